// Issue 13, items 4, 9 and 10 at the admission layer, on a real database:
// the dialled number's tenant decides which trunks apply; unknown sources
// learn nothing and cost no query; trunks are cached and invalidated on every
// node; digests are bound to the Request-URI, need qop=auth with an increasing
// nc, and a nonce from one node is accepted by another.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admitter, type AdmissionRequest } from '../../sip/admission.js';
import { digestResponse } from '../../sip/digest.js';
import { ControlPlane } from '../../src/store/index.js';
import { InvalidError } from '../../src/store/errors.js';
import { normaliseCidr, TrunkIndex } from '../../src/store/trunks.js';
import type { Principal } from '../../src/store/types.js';
import { freshDatabase, realPg, realRedis, redisPrefix } from '../helpers/databases.js';
import { tempDir } from '../helpers/spawn-server.js';

const admin: Principal = { keyId: 'key_test', keyName: 'test', tenantId: null, platformAdmin: true, scopes: [] };
const REALM = 'aybiza';
const SHARED_BLOCK = '198.51.100.0/24';
const CARRIER = '198.51.100.7';
const STRANGER = '203.0.113.9';
const NUM_A = '+15550001001';
const NUM_B = '+15550002002';
const NUM_C = '+15550003003';
const UNKNOWN = '+15550009999';

async function open(url: string, redis?: string, prefix?: string): Promise<ControlPlane> {
  return ControlPlane.open({ dataDir: tempDir('adm-'), databaseUrl: url, redisUrl: redis, redisPrefix: prefix, sipRealm: REALM });
}

/** Counts queries on the pool from now on. */
function countQueries(cp: ControlPlane): { readonly n: number; stop(): void } {
  const pool = cp.db.pool as unknown as { query: (...a: unknown[]) => unknown };
  const original = pool.query;
  let n = 0;
  pool.query = function (this: unknown, ...a: unknown[]) {
    n++;
    return original.apply(this, a);
  };
  return { get n() { return n; }, stop: () => void (pool.query = original) };
}

const ruri = (number: string) => `sip:${number}@192.0.2.10:5060`;

/** An Authorization header answering a challenge (qop=auth). */
function authorize(challenge: string[] | undefined, o: { user: string; password: string; number: string; uri?: string; nc?: number; qop?: boolean }): string {
  const www = challenge?.find((h) => h.includes('algorithm=MD5'));
  const nonce = /nonce="([^"]+)"/.exec(www ?? '')?.[1];
  if (!nonce) throw new Error(`no challenge in ${JSON.stringify(challenge)}`);
  const ha1 = crypto.createHash('md5').update(`${o.user}:${REALM}:${o.password}`).digest('hex');
  const uri = o.uri ?? ruri(o.number);
  const nc = (o.nc ?? 1).toString(16).padStart(8, '0');
  const qop = o.qop === false ? null : 'auth';
  const response = digestResponse('MD5', ha1, 'INVITE', { nonce, uri, qop, nc: qop ? nc : null, cnonce: qop ? 'c0ffee' : null });
  return `Digest username="${o.user}", realm="${REALM}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=MD5` +
    (qop ? `, cnonce="c0ffee", qop=auth, nc=${nc}` : '');
}

describe('trunk CIDRs in memory', () => {
  const trunk = (id: string, allowedCidrs: string[]) => ({
    id, tenantId: 't', name: id, allowedCidrs, username: null, realm: REALM, allowRefer: false, createdAt: '', ha1Md5: null, ha1Sha256: null,
  });

  it('matches like PostgreSQL inet <<= cidr: same family only, IPv4-mapped sources as IPv4, IPv6 in any spelling', () => {
    const ix = new TrunkIndex([trunk('v4', ['198.51.100.0/24']), trunk('v6', ['2001:db8::/32']), trunk('zero6', ['::/32']), trunk('host', ['192.0.2.7/32'])]);
    const ids = (ip: string) => ix.forAddress(ip).map((t) => t.id);
    expect(ids('198.51.100.7')).toEqual(['v4']);
    expect(ids('::ffff:198.51.100.7')).toEqual(['v4']);
    expect(ids('::ffff:c633:6407')).toEqual(['v4']);
    expect(ids('198.51.101.7')).toEqual([]);
    expect(ids('2001:db8:1::5')).toEqual(['v6']);
    expect(ids('2001:0DB8:0:0:0:0:0:1')).toEqual(['v6']);
    expect(ids('2001:db9::1')).toEqual([]);
    expect(ids('::1')).toEqual(['zero6']);
    expect(ids('192.0.2.7')).toEqual(['host']);
    expect(ids('192.0.2.8')).toEqual([]);
    expect(ids('not an address')).toEqual([]);
  });

  it('normalises and refuses blocks, naming the field', () => {
    expect(normaliseCidr('192.0.2.7', 0)).toBe('192.0.2.7/32');
    expect(normaliseCidr(' 10.0.0.0/8 ', 0)).toBe('10.0.0.0/8');
    expect(normaliseCidr('2001:db8::/32', 0)).toBe('2001:db8::/32');
    expect(normaliseCidr('10.0.0.0/7', 0, true)).toBe('10.0.0.0/7');
    const refused = (v: string, allowBroad = false) => {
      try {
        normaliseCidr(v, 3, allowBroad);
        return null;
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidError);
        expect((err as InvalidError).field).toBe('allowedCidrs[3]');
        return (err as Error).message;
      }
    };
    for (const v of ['0.0.0.0/0', '::/0', '1.2.3.4/0']) expect(refused(v, true)).toMatch(/every address/);
    for (const v of ['10.0.0.0/7', '128.0.0.0/1', '2001:db8::/31']) expect(refused(v)).toMatch(/allowBroadCidr/);
    expect(refused('10.1.2.3/8')).toMatch(/bits set/);
    expect(refused('::ffff:10.0.0.0/104')).toMatch(/IPv4-mapped/);
    expect(refused('10.0.0.0/33')).toMatch(/not an IP address/);
    expect(refused('example.com')).toMatch(/not an IP address/);
  });
});

describe.skipIf(!realPg)('SIP admission (real PostgreSQL)', () => {
  let url: string;
  let cp: ControlPlane;
  let admitter: Admitter;
  let tenantA: string;
  let tenantB: string;
  const req = (r: Partial<AdmissionRequest> & { number: string }): AdmissionRequest => ({
    sourceIp: r.sourceIp ?? CARRIER, method: 'INVITE', requestUri: r.requestUri ?? ruri(r.number), dialled: r.number, authorization: r.authorization,
  });

  beforeAll(async () => {
    url = await freshDatabase();
    cp = await open(url);
    admitter = new Admitter(cp, REALM);
    // Tenant A allows a shared carrier block; tenant B authenticates by digest; tenant C allows another block.
    const ids: string[] = [];
    for (const [name, number] of [['A', NUM_A], ['B', NUM_B], ['C', NUM_C]] as const) {
      const t = await cp.tenants.create(admin, name, null);
      const a = await cp.agents.create(admin, t.id, { name, prompt: 'p' });
      await cp.agents.addNumber(admin, t.id, number, a.id);
      ids.push(t.id);
    }
    [tenantA, tenantB] = ids as [string, string];
    await cp.trunks.create(admin, tenantA, { name: 'A carrier', allowedCidrs: [SHARED_BLOCK] });
    await cp.trunks.create(admin, tenantB, { name: 'B creds', allowedCidrs: [], username: 'tenantb', password: 'b-password-1' });
    await cp.trunks.create(admin, ids[2]!, { name: 'C carrier', allowedCidrs: ['192.0.2.128/25'] });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("challenges a number of tenant B from a source tenant A's trunk allows, and admits B's digest", async () => {
    const own = await admitter.admit(req({ number: NUM_A }));
    expect(own).toMatchObject({ ok: true, agent: { tenantId: tenantA } });
    const first = await admitter.admit(req({ number: NUM_B }));
    expect(first).toMatchObject({ ok: false, status: 401 });
    const headers = first.ok ? undefined : first.headers?.map((h) => h.replace(/^WWW-Authenticate: /, ''));
    const second = await admitter.admit(req({ number: NUM_B, authorization: authorize(headers, { user: 'tenantb', password: 'b-password-1', number: NUM_B }) }));
    expect(second).toMatchObject({ ok: true, agent: { tenantId: tenantB }, trunk: { tenantId: tenantB, username: 'tenantb' } });
  });

  it('answers an unknown number like another tenant\'s number (no leak), and a stranger before any lookup', async () => {
    // A known source without credentials: 401 for both.
    const unknown = await admitter.admit(req({ number: UNKNOWN }));
    const other = await admitter.admit(req({ number: NUM_C }));
    expect([unknown.ok ? 200 : unknown.status, other.ok ? 200 : other.status]).toEqual([401, 401]);
    // With B's valid digest: 404 for both.
    const ch = (await admitter.digest.challenge()).slice();
    let nc = 1;
    const withB = (number: string) => admitter.admit(req({ number, authorization: authorize(ch, { user: 'tenantb', password: 'b-password-1', number, nc: nc++ }) }));
    expect(await withB(UNKNOWN)).toMatchObject({ ok: false, status: 404 });
    expect(await withB(NUM_C)).toMatchObject({ ok: false, status: 404 });
    // A stranger: 401 whatever it dials, before the number is looked up.
    const s1 = await admitter.admit(req({ sourceIp: STRANGER, number: UNKNOWN }));
    const s2 = await admitter.admit(req({ sourceIp: STRANGER, number: NUM_A }));
    expect([s1.ok ? 200 : s1.status, s2.ok ? 200 : s2.status]).toEqual([401, 401]);
    expect(s1.ok ? '' : s1.reason).toBe(s2.ok ? '' : s2.reason);
  });

  it('an INVITE flood from an unknown source causes no database query per packet', async () => {
    await admitter.admit(req({ sourceIp: STRANGER, number: UNKNOWN })); // warm: trunk index and nonce key
    const q = countQueries(cp);
    try {
      for (let i = 0; i < 300; i++) {
        const number = `+1555${String(1_000_000 + i)}`;
        const bogus = i % 2 ? `Digest username="tenantb", realm="${REALM}", nonce="x.y.z", uri="${ruri(number)}", response="00", qop=auth, nc=00000001, cnonce="a"` : undefined;
        const a = await admitter.admit(req({ sourceIp: STRANGER, number, authorization: bogus }));
        expect(a).toMatchObject({ ok: false, status: 401 });
      }
      expect(q.n).toBe(0);
    } finally {
      q.stop();
    }
  });

  it('sees a trunk change at once (create, update, delete) and reloads only then', async () => {
    const probe = '192.0.2.50';
    expect(await admitter.admit(req({ sourceIp: probe, number: NUM_A }))).toMatchObject({ ok: false, status: 401 });
    const trunk = await cp.trunks.create(admin, tenantA, { name: 'new', allowedCidrs: ['192.0.2.48/29'] });
    const q = countQueries(cp);
    try {
      expect(await admitter.admit(req({ sourceIp: probe, number: NUM_A }))).toMatchObject({ ok: true });
      expect(await admitter.admit(req({ sourceIp: probe, number: NUM_A }))).toMatchObject({ ok: true });
      const reloads = q.n;
      await cp.trunks.update(admin, tenantA, trunk.id, { allowedCidrs: ['192.0.2.56/29'] });
      expect(await admitter.admit(req({ sourceIp: probe, number: NUM_A }))).toMatchObject({ ok: false, status: 401 });
      await cp.trunks.update(admin, tenantA, trunk.id, { allowedCidrs: ['192.0.2.48/29'] });
      expect(await admitter.admit(req({ sourceIp: probe, number: NUM_A }))).toMatchObject({ ok: true });
      await cp.trunks.delete(admin, tenantA, trunk.id);
      expect(await admitter.admit(req({ sourceIp: probe, number: NUM_A }))).toMatchObject({ ok: false, status: 401 });
      // One index load per change (plus the resolver's first lookup of the number), none per INVITE.
      expect(reloads).toBeLessThanOrEqual(2);
    } finally {
      q.stop();
    }
  });

  it('refuses a digest whose uri is not the Request-URI, one without qop, and a replayed nc', async () => {
    const ch = (await admitter.digest.challenge()).slice();
    const creds = { user: 'tenantb', password: 'b-password-1', number: NUM_B };
    // The same response presented for another Request-URI.
    const wrongUri = await admitter.admit(req({ number: NUM_B, requestUri: 'sip:+15550002002@192.0.2.10:5061', authorization: authorize(ch, { ...creds, nc: 1 }) }));
    expect(wrongUri).toMatchObject({ ok: false, status: 401, reason: 'digest_failed' });
    const noQop = await admitter.admit(req({ number: NUM_B, authorization: authorize(ch, { ...creds, qop: false }) }));
    expect(noQop).toMatchObject({ ok: false, status: 401, reason: 'digest_failed' });
    const good = authorize(ch, { ...creds, nc: 2 });
    expect(await admitter.admit(req({ number: NUM_B, authorization: good }))).toMatchObject({ ok: true });
    const replay = await admitter.admit(req({ number: NUM_B, authorization: good }));
    expect(replay).toMatchObject({ ok: false, status: 401, reason: 'digest_replay' });
    expect(replay.ok ? [] : replay.headers).toEqual(expect.arrayContaining([expect.stringContaining('stale=true')]));
    expect(await admitter.admit(req({ number: NUM_B, authorization: authorize(ch, { ...creds, nc: 1 }) }))).toMatchObject({ status: 401 });
    expect(await admitter.admit(req({ number: NUM_B, authorization: authorize(ch, { ...creds, nc: 3 }) }))).toMatchObject({ ok: true });
  });

  it('a credential change through update() applies at once: the old password fails, the new one works', async () => {
    const b = (await cp.trunks.list(tenantB)).find((t) => t.username === 'tenantb')!;
    await cp.trunks.update(admin, tenantB, b.id, { username: 'tenantb', password: 'b-password-2' });
    try {
      const ch = (await admitter.digest.challenge()).slice();
      const old = await admitter.admit(req({ number: NUM_B, authorization: authorize(ch, { user: 'tenantb', password: 'b-password-1', number: NUM_B, nc: 1 }) }));
      expect(old).toMatchObject({ ok: false, status: 401 });
      const now = await admitter.admit(req({ number: NUM_B, authorization: authorize(ch, { user: 'tenantb', password: 'b-password-2', number: NUM_B, nc: 2 }) }));
      expect(now).toMatchObject({ ok: true, trunk: { id: b.id } });
    } finally {
      await cp.trunks.update(admin, tenantB, b.id, { username: 'tenantb', password: 'b-password-1' });
    }
  });

  it('accepts on a second node a nonce issued by the first (nonce key shared through the database)', async () => {
    const other = await open(url);
    try {
      const second = new Admitter(other, REALM);
      const first = await admitter.admit(req({ sourceIp: STRANGER, number: NUM_B }));
      expect(first).toMatchObject({ ok: false, status: 401 });
      const headers = first.ok ? undefined : first.headers?.map((h) => h.replace(/^WWW-Authenticate: /, ''));
      const a = await second.admit(req({ sourceIp: STRANGER, number: NUM_B, authorization: authorize(headers, { user: 'tenantb', password: 'b-password-1', number: NUM_B }) }));
      expect(a).toMatchObject({ ok: true, agent: { tenantId: tenantB } });
    } finally {
      await other.close();
    }
  });
});

describe.skipIf(!realPg || !realRedis)('SIP admission on two nodes (PostgreSQL + Redis)', () => {
  it('a trunk created on one node admits at once on the other; a digest replayed to the other node is refused', async () => {
    const url = await freshDatabase();
    const p = redisPrefix();
    const nodeA = await open(url, realRedis, p);
    const nodeB = await open(url, realRedis, p);
    try {
      await (nodeA.state as unknown as { subscribed(): Promise<void> }).subscribed();
      const t = await nodeB.tenants.create(admin, 'T', null);
      const ag = await nodeB.agents.create(admin, t.id, { name: 'x', prompt: 'p' });
      await nodeB.agents.addNumber(admin, t.id, NUM_A, ag.id);
      await nodeB.trunks.create(admin, t.id, { name: 'creds', allowedCidrs: [], username: 'nodeuser', password: 'node-password' });
      const onA = new Admitter(nodeA, REALM);
      const onB = new Admitter(nodeB, REALM);
      const refused = await onA.admit({ sourceIp: CARRIER, method: 'INVITE', requestUri: ruri(NUM_A), dialled: NUM_A, authorization: undefined });
      expect(refused).toMatchObject({ ok: false, status: 401 }); // A's index is now warm
      await nodeB.trunks.create(admin, t.id, { name: 'cidr', allowedCidrs: [SHARED_BLOCK] });
      let a = await onA.admit({ sourceIp: CARRIER, method: 'INVITE', requestUri: ruri(NUM_A), dialled: NUM_A, authorization: undefined });
      for (let i = 0; i < 100 && !a.ok; i++) {
        await new Promise((r) => setTimeout(r, 10));
        a = await onA.admit({ sourceIp: CARRIER, method: 'INVITE', requestUri: ruri(NUM_A), dialled: NUM_A, authorization: undefined });
      }
      expect(a).toMatchObject({ ok: true });

      const ch = refused.ok ? undefined : refused.headers?.map((h) => h.replace(/^WWW-Authenticate: /, ''));
      const auth = authorize(ch, { user: 'nodeuser', password: 'node-password', number: NUM_A });
      const first = await onB.admit({ sourceIp: STRANGER, method: 'INVITE', requestUri: ruri(NUM_A), dialled: NUM_A, authorization: auth });
      expect(first).toMatchObject({ ok: true });
      const replayed = await onA.admit({ sourceIp: STRANGER, method: 'INVITE', requestUri: ruri(NUM_A), dialled: NUM_A, authorization: auth });
      expect(replayed).toMatchObject({ ok: false, status: 401, reason: 'digest_replay' });
    } finally {
      await nodeA.close();
      await nodeB.close();
    }
  });
});
