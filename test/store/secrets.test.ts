// Secrets at rest (issue 13, item 7): AES-256-GCM with a key id beside each
// ciphertext, keys that rotate, the key variable's validation, and what the
// database itself holds.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { ControlPlane } from '../../src/store/index.js';
import { Keyring, keyId, mask, SecretError } from '../../src/store/secrets.js';
import { scrubSecrets } from '../../src/store/audit.js';
import type { Principal } from '../../src/store/types.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { tempDir } from '../helpers/spawn-server.js';

const admin: Principal = { keyId: 'key_test', keyName: 'test', tenantId: null, platformAdmin: true, scopes: [] };
const HEADER = 'Bearer tool-secret-abcd1234';

describe('AYBIZA_ENCRYPTION_KEY', () => {
  const base = { DATA_DIR: tempDir('cfg-') };
  it('accepts 32 bytes as hex or base64, and names the variable (never the value) when it is wrong', () => {
    const key = crypto.randomBytes(32);
    expect(loadConfig({ ...base, AYBIZA_ENCRYPTION_KEY: key.toString('hex') }).encryptionKey).toEqual(key);
    expect(loadConfig({ ...base, AYBIZA_ENCRYPTION_KEY: key.toString('base64') }).encryptionKey).toEqual(key);
    expect(loadConfig({ ...base, AYBIZA_ENCRYPTION_KEY: key.toString('base64url') }).encryptionKey).toEqual(key);
    expect(loadConfig(base).encryptionKey).toBeUndefined();
    for (const bad of ['c2hvcnQta2V5', crypto.randomBytes(16).toString('hex'), crypto.randomBytes(33).toString('base64'), 'not a key!']) {
      let err: unknown;
      try {
        loadConfig({ ...base, AYBIZA_ENCRYPTION_KEY: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('AYBIZA_ENCRYPTION_KEY');
      expect((err as Error).message).not.toContain(bad);
    }
    const old = [crypto.randomBytes(32), crypto.randomBytes(32)];
    const cfg = loadConfig({ ...base, AYBIZA_ENCRYPTION_KEYS_OLD: `${old[0].toString('hex')}, ${old[1].toString('base64')}` });
    expect(cfg.encryptionKeysOld).toEqual(old);
    expect(() => loadConfig({ ...base, AYBIZA_ENCRYPTION_KEYS_OLD: 'abc' })).toThrow(/AYBIZA_ENCRYPTION_KEYS_OLD/);
  });
});

describe('Keyring', () => {
  it('seals with AES-256-GCM under a key id, opens only in the same context, and detects tampering', () => {
    const k = new Keyring(crypto.randomBytes(32));
    const sealed = k.seal(HEADER, 'tenant:a');
    expect(sealed).toMatch(new RegExp(`^enc:v1:${k.currentId}:[\\w-]+:[\\w-]+:[\\w-]+$`));
    expect(sealed).not.toContain('tool-secret');
    expect(k.seal(HEADER, 'tenant:a')).not.toBe(sealed); // fresh IV each time
    expect(k.open(sealed, 'tenant:a')).toBe(HEADER);
    expect(() => k.open(sealed, 'tenant:b')).toThrow(SecretError);
    const parts = sealed.split(':');
    parts[5] = Buffer.from(Buffer.from(parts[5], 'base64url').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64url');
    expect(() => k.open(parts.join(':'), 'tenant:a')).toThrow(SecretError);
  });

  it('rotates: an old key still opens what it sealed, new seals use the new key, an unknown key is named', () => {
    const oldKey = crypto.randomBytes(32);
    const newKey = crypto.randomBytes(32);
    const before = new Keyring(oldKey).seal(HEADER, 'c');
    const rotated = new Keyring(newKey, [oldKey]);
    expect(rotated.open(before, 'c')).toBe(HEADER);
    expect(rotated.needsReseal(before)).toBe(true);
    const after = rotated.seal(HEADER, 'c');
    expect(after.split(':')[2]).toBe(keyId(newKey));
    expect(rotated.needsReseal(after)).toBe(false);
    expect(() => new Keyring(newKey).open(before, 'c')).toThrow(new RegExp(keyId(oldKey)));
  });

  it('masks as **** plus the last 4 characters (only **** for short secrets)', () => {
    expect(mask(HEADER)).toBe('****1234');
    expect(mask('short')).toBe('****');
    const k = new Keyring(crypto.randomBytes(32));
    expect(k.maskStored(k.seal(HEADER, 'c'), 'c')).toBe('****1234');
    expect(k.maskStored(new Keyring(crypto.randomBytes(32)).seal(HEADER, 'c'), 'c')).toBe('****');
  });

  it('without AYBIZA_ENCRYPTION_KEY generates one key into DATA_DIR (mode 0600) and keeps using it', () => {
    const dir = tempDir('keys-');
    const a = Keyring.load({ dataDir: dir });
    const file = path.join(dir, 'encryption.key');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const b = Keyring.load({ dataDir: dir });
    expect(b.currentId).toBe(a.currentId);
    // Setting the variable later: the generated key still opens what it sealed.
    const sealed = a.seal(HEADER, 'c');
    const configured = Keyring.load({ dataDir: dir, key: crypto.randomBytes(32) });
    expect(configured.currentId).not.toBe(a.currentId);
    expect(configured.open(sealed, 'c')).toBe(HEADER);
  });
});

describe('audit entries', () => {
  it('mask any secret-named field that reaches the audit log unmasked (webhook secrets, passwords, HA1, ciphertext)', () => {
    const sealed = new Keyring(crypto.randomBytes(32)).seal(HEADER, 'c');
    expect(
      scrubSecrets({
        name: 'n',
        tools: [{ name: 't', authHeader: HEADER }, { name: 'u', authHeader: '****1234' }, { name: 'v', authHeader: sealed }],
        webhook: { url: 'https://x.example', signingSecret: 'whsec_0123456789wxyz' },
        password: 'pw',
        ha1Md5: '0123456789abcdef0123456789abcdef',
        nextCursor: 'keep-me',
      }),
    ).toEqual({
      name: 'n',
      tools: [{ name: 't', authHeader: '****1234' }, { name: 'u', authHeader: '****1234' }, { name: 'v', authHeader: '****' }],
      webhook: { url: 'https://x.example', signingSecret: '****wxyz' },
      password: '****',
      ha1Md5: '****cdef',
      nextCursor: 'keep-me',
    });
  });
});

describe('secrets in the database', () => {
  const planes: ControlPlane[] = [];
  afterAll(async () => {
    for (const cp of planes) await cp.close();
  });
  const open = async (dataDir: string, databaseUrl: string | undefined, key: Buffer, old: Buffer[] = []) => {
    const cp = await ControlPlane.open({ dataDir, databaseUrl, sipRealm: 'aybiza', encryptionKey: key, encryptionKeysOld: old });
    planes.push(cp);
    return cp;
  };
  const close = async (cp: ControlPlane) => {
    planes.splice(planes.indexOf(cp), 1);
    await cp.close();
  };
  const rowsText = async (cp: ControlPlane) =>
    JSON.stringify((await cp.db.pool.query('select config from agent_versions')).rows) + JSON.stringify((await cp.db.pool.query('select before, after from audit_log')).rows);
  const tool = (authHeader?: string) => ({ name: 'lookup', description: 'd', parameters: { type: 'object' }, url: 'https://tools.example.com/x', ...(authHeader ? { authHeader } : {}) });

  it('stores only ciphertext, reveals to the resolver, and rotates keys (old key opens, startup re-seals under the new one)', async () => {
    const dataDir = tempDir('sec-');
    const databaseUrl = realPg ? await freshDatabase() : undefined;
    const keyA = crypto.randomBytes(32);
    const keyB = crypto.randomBytes(32);

    let cp = await open(dataDir, databaseUrl, keyA);
    const t = await cp.tenants.create(admin, 'Sec', null);
    const a = await cp.agents.create(admin, t.id, { name: 'x', prompt: 'p', tools: [tool(HEADER)] });
    expect(a.tools![0].authHeader).toBe('****1234');
    await cp.agents.addNumber(admin, t.id, '+14155550177', a.id);
    const raw = (await cp.db.pool.query('select config from agent_versions where agent_id = $1', [a.id])).rows[0].config;
    expect(raw.tools[0].authHeader).toMatch(new RegExp(`^enc:v1:${keyId(keyA)}:`));
    expect(await rowsText(cp)).not.toContain('tool-secret');
    expect((await cp.resolver.resolveNumber('+14155550177'))!.config.tools![0].authHeader).toBe(HEADER);
    await close(cp);

    // Rotation: B is current, A decrypt-only. Startup re-seals A's ciphertext under B.
    cp = await open(dataDir, databaseUrl, keyB, [keyA]);
    expect((await cp.resolver.resolveNumber('+14155550177'))!.config.tools![0].authHeader).toBe(HEADER);
    const resealed = (await cp.db.pool.query('select config from agent_versions where agent_id = $1', [a.id])).rows[0].config;
    expect(resealed.tools[0].authHeader).toMatch(new RegExp(`^enc:v1:${keyId(keyB)}:`));
    const a2 = await cp.agents.create(admin, t.id, { name: 'y', prompt: 'p', tools: [tool('Bearer another-secret-9999')] });
    const raw2 = (await cp.db.pool.query('select config from agent_versions where agent_id = $1', [a2.id])).rows[0].config;
    expect(raw2.tools[0].authHeader).toMatch(new RegExp(`^enc:v1:${keyId(keyB)}:`));
    await close(cp);

    // A is retired: everything is readable with B alone.
    cp = await open(dataDir, databaseUrl, keyB);
    expect((await cp.resolver.resolveNumber('+14155550177'))!.config.tools![0].authHeader).toBe(HEADER);
    await close(cp);

    // A wrong key: the API still answers (mask only), the call path drops the header rather than send ciphertext.
    cp = await open(dataDir, databaseUrl, crypto.randomBytes(32));
    expect((await cp.agents.get(t.id, a.id)).tools![0].authHeader).toBe('****');
    expect((await cp.resolver.resolveNumber('+14155550177'))!.config.tools![0]).not.toHaveProperty('authHeader');
    await close(cp);
  });

  it('seals headers stored in plaintext by earlier versions, and masks them in old audit entries', async () => {
    const dataDir = tempDir('legacy-');
    const databaseUrl = realPg ? await freshDatabase() : undefined;
    const key = crypto.randomBytes(32);
    let cp = await open(dataDir, databaseUrl, key);
    const t = await cp.tenants.create(admin, 'Legacy', null);
    const a = await cp.agents.create(admin, t.id, { name: 'x', prompt: 'p' });
    // What the code before this issue wrote: the header in clear, in the version and in the audit log.
    await cp.db.pool.query('update agent_versions set config = $2 where agent_id = $1', [a.id, JSON.stringify({ name: 'x', prompt: 'p', tools: [tool(HEADER)] })]);
    await cp.db.pool.query(
      "insert into audit_log (tenant_id, actor, action, object_type, object_id, after) values ($1, 'old', 'agent.update', 'agent', $2, $3)",
      [t.id, a.id, JSON.stringify({ name: 'x', tools: [tool(HEADER), tool()] })],
    );
    await cp.db.pool.query('delete from schema_migrations where version = 5');
    await close(cp);

    cp = await open(dataDir, databaseUrl, key);
    expect(await rowsText(cp)).not.toContain('tool-secret');
    const entry = (await cp.db.pool.query("select after from audit_log where actor = 'old'")).rows[0].after;
    expect(entry.tools.map((x: { authHeader?: string }) => x.authHeader)).toEqual(['****1234', undefined]);
    expect((await cp.agents.get(t.id, a.id)).tools![0].authHeader).toBe('****1234');
    await close(cp);
  });
});
