// deploy/kubernetes: several replicas must share an external database and
// Redis, never run on private emptyDir databases, and take production secrets
// from a Secret (issue 13 item 16). No YAML package is installed: the manifest
// is checked by document and by regular expression.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const DIR = path.resolve(__dirname, '../../deploy/kubernetes');
const FROM_SECRET = ['DATABASE_URL', 'REDIS_URL', 'AYBIZA_ENCRYPTION_KEY', 'TWILIO_AUTH_TOKEN', 'DEEPGRAM_API_KEY'];

interface Doc { file: string; kind: string; text: string }

function documents(): Doc[] {
  const out: Doc[] = [];
  for (const file of fs.readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f))) {
    for (const text of fs.readFileSync(path.join(DIR, file), 'utf8').split(/^---\s*$/m)) {
      const kind = /^kind:\s*(\S+)/m.exec(text)?.[1];
      if (kind) out.push({ file, kind, text });
    }
  }
  return out;
}

/** The `- name: X` entry of an env list, block or flow style, up to the next entry. */
function envEntry(text: string, name: string): string | undefined {
  const m = new RegExp(`^([ ]*)- (?:\\{\\s*)?name:\\s*"?${name}"?[,\\s][^\\n]*(?:\\n\\1[ ][^\\n]*)*`, 'm').exec(text);
  return m?.[0];
}

describe('deploy/kubernetes', () => {
  const deployments = documents().filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet');

  it('has a Deployment', () => {
    expect(deployments.length).toBeGreaterThan(0);
  });

  it('no Deployment with more than one replica keeps data in an emptyDir or the embedded database', () => {
    for (const d of deployments) {
      const replicas = Number(/^\s*replicas:\s*(\d+)/m.exec(d.text)?.[1] ?? 1);
      if (replicas <= 1) continue;
      expect(d.text, `${d.file}: ${replicas} replicas on emptyDir`).not.toMatch(/emptyDir/);
      expect(d.text, `${d.file}: DATABASE_URL=embedded with ${replicas} replicas`).not.toMatch(/value:\s*"?embedded"?/);
      for (const name of ['DATABASE_URL', 'REDIS_URL']) expect(envEntry(d.text, name), `${d.file}: ${name} missing`).toBeDefined();
    }
  });

  it('runs NODE_ENV=production and takes every production secret from a Secret, never a literal', () => {
    for (const d of deployments) {
      expect(envEntry(d.text, 'NODE_ENV')).toMatch(/value:\s*"?production"?/);
      for (const name of FROM_SECRET) {
        const entry = envEntry(d.text, name);
        expect(entry, `${d.file}: ${name} missing`).toBeDefined();
        expect(entry, `${d.file}: ${name} not from a Secret`).toMatch(/valueFrom:\s*(?:\{\s*)?\n?\s*secretKeyRef:/);
        expect(entry, `${d.file}: ${name} is a literal`).not.toMatch(/\bvalue:/);
      }
    }
  });

  it('the entry parser reads block and flow styles (self-check)', () => {
    const text = '          env:\n            - { name: A, value: x }\n            - name: B\n              valueFrom:\n                secretKeyRef: { name: s, key: B }\n            - name: C\n              value: y\n';
    expect(envEntry(text, 'A')).toMatch(/value: x/);
    expect(envEntry(text, 'B')).toMatch(/secretKeyRef/);
    expect(envEntry(text, 'B')).not.toMatch(/value: y/);
    expect(envEntry(text, 'C')).toMatch(/value: y/);
    expect(envEntry(text, 'D')).toBeUndefined();
  });
});
