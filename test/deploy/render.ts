// Renders deploy/kubernetes's kustomize overlays for the tests: with
// `kubectl kustomize` when kubectl is installed, else with the small
// renderer below, which knows exactly what our overlays use (resources,
// namespace, labels, patches as strategic-merge files). When kubectl is
// there, the test checks both give the same objects, so the fallback stays
// honest. YAML is read through python3's PyYAML (no YAML package in
// node_modules).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };

export const haveKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
export const haveYaml = spawnSync('python3', ['-c', 'import yaml'], { stdio: 'ignore' }).status === 0;

/** Every document of a YAML stream, as JSON values (empty documents dropped). */
export function parseYaml(text: string): unknown[] {
  const r = spawnSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))'], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`YAML did not parse: ${r.stderr}`);
  return JSON.parse(r.stdout) as unknown[];
}

export function kubectlKustomize(dir: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
  return parseYaml(r.stdout) as K8sObject[];
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass']);
/** Strategic-merge keys of the list fields our manifests patch. */
const MERGE_KEYS: Record<string, string> = { containers: 'name', initContainers: 'name', env: 'name', volumes: 'name', volumeMounts: 'mountPath', ports: 'containerPort' };

interface Kustomization {
  resources?: string[];
  namespace?: string;
  labels?: { pairs: Record<string, string> }[];
  patches?: { path: string }[];
  [other: string]: unknown;
}

/** The small renderer: refuses any kustomization field it does not implement. */
export function miniKustomize(dir: string): K8sObject[] {
  const k = parseYaml(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'))[0] as Kustomization;
  const known = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'patches']);
  for (const key of Object.keys(k)) if (!known.has(key)) throw new Error(`${dir}: kustomization field ${key} is not supported by the fallback renderer`);
  let objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    objects.push(...(fs.statSync(p).isDirectory() ? miniKustomize(p) : (parseYaml(fs.readFileSync(p, 'utf8')) as K8sObject[])));
  }
  for (const patch of k.patches ?? []) {
    const doc = parseYaml(fs.readFileSync(path.join(dir, patch.path), 'utf8'))[0] as K8sObject;
    const i = objects.findIndex((o) => o.kind === doc.kind && o.metadata.name === doc.metadata.name);
    if (i < 0) throw new Error(`${patch.path}: no ${doc.kind} ${doc.metadata.name} to patch`);
    objects[i] = merge(objects[i], doc) as K8sObject;
  }
  for (const { pairs } of k.labels ?? []) for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  if (k.namespace) objects = objects.map((o) => (CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace } }));
  return objects;
}

function merge(base: unknown, patch: unknown, field = ''): unknown {
  if (Array.isArray(base) && Array.isArray(patch) && MERGE_KEYS[field]) {
    const key = MERGE_KEYS[field]!;
    const out = (base as Record<string, unknown>[]).map((b) => {
      const p = (patch as Record<string, unknown>[]).find((x) => x[key] === b[key]);
      return p ? merge(b, p) : b;
    });
    // New items go first, as kustomize puts them.
    const added = (patch as Record<string, unknown>[]).filter((p) => !(base as Record<string, unknown>[]).some((b) => b[key] === p[key]));
    return [...added, ...out];
  }
  if (isMap(base) && isMap(patch)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in base ? merge(base[k], v, k) : v;
    return out;
  }
  return patch;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Order-independent form for comparing two renderings: keys sorted, named lists sorted by their key. */
export function canonical(v: unknown, field = ''): unknown {
  if (Array.isArray(v)) {
    const items = v.map((x) => canonical(x));
    const key = MERGE_KEYS[field];
    return key ? items.sort((a, b) => String((a as Record<string, unknown>)[key]).localeCompare(String((b as Record<string, unknown>)[key]))) : items;
  }
  if (isMap(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k], k)]));
  return v;
}

export function render(dir: string): K8sObject[] {
  return haveKubectl ? kubectlKustomize(dir) : miniKustomize(dir);
}
