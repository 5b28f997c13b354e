// deploy/kubernetes (issue 15 need 3): the kustomize overlays render, every
// rendered object validates against the Kubernetes OpenAPI schemas
// (kubernetes-models: schemas.ts) and our own check of field names and
// references (validate.ts), and each overlay
// keeps its promises: the trial is one pod on the embedded database; in
// production several replicas share an external PostgreSQL and Redis and
// take every secret from a Secret, with a PDB, an HPA on aybiza_calls_active
// and SIP nodes on host networking behind Kamailio.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonical, haveKubectl, haveYaml, kubectlKustomize, miniKustomize, render, type K8sObject } from './render.js';
import { validateWithModels } from './schemas.js';
import { validate } from './validate.js';

const DIR = path.resolve(__dirname, '../../deploy/kubernetes');
const OVERLAYS = ['trial', 'production'];
const FROM_SECRET = ['DATABASE_URL', 'REDIS_URL', 'AYBIZA_ENCRYPTION_KEY', 'TWILIO_AUTH_TOKEN', 'DEEPGRAM_API_KEY'];

type Obj = Record<string, unknown>;
interface Container { name: string; image: string; env?: { name: string; value?: string; valueFrom?: Obj }[]; volumeMounts?: { name: string; mountPath: string }[] }
const pod = (w: K8sObject) => ((w.spec as Obj).template as Obj).spec as { containers: Container[]; hostNetwork?: boolean; volumes?: Obj[] };
const aybizaWorkloads = (objs: K8sObject[]) =>
  objs.filter((o) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(o.kind) && pod(o).containers.some((c) => c.image.startsWith('ghcr.io/aybiza/aybiza')));
const env = (c: Container, name: string) => c.env?.find((e) => e.name === name);

describe.skipIf(!haveYaml)('deploy/kubernetes overlays', () => {
  const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, render(path.join(DIR, 'overlays', o))])) as Record<string, K8sObject[]>;

  it.each(OVERLAYS)('%s: every rendered object passes the schema check', (overlay) => {
    expect(rendered[overlay]!.length).toBeGreaterThan(3);
    expect(validate(rendered[overlay]!)).toEqual([]);
  });

  it.each(OVERLAYS)('%s: every rendered object validates against the Kubernetes OpenAPI schemas (kubernetes-models)', (overlay) => {
    expect(validateWithModels(rendered[overlay]!)).toEqual([]);
  });

  it('the OpenAPI schema check catches wrong types and unknown kinds (self-check)', () => {
    const objs = structuredClone(rendered.production!);
    const d = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'aybiza')!;
    const c = pod(d).containers[0]! as Container & Obj;
    (c.env as Obj[]).push({ name: 'WORKERS', value: 2 });
    (c.ports as Obj[] | undefined)?.push({ containerPort: 'http' });
    objs.push({ apiVersion: 'v1', kind: 'Pods', metadata: { name: 'typo' } } as K8sObject);
    const errors = validateWithModels(objs).join('\n');
    expect(errors).toMatch(/Deployment\/aybiza: \/spec\/template\/spec\/containers\/0\/env\/\d+\/value must be string/);
    expect(errors).toMatch(/no Kubernetes schema for v1 Pods/);
  });

  it.skipIf(!haveKubectl)('the fallback renderer gives what kubectl kustomize gives', () => {
    for (const o of OVERLAYS) {
      const dir = path.join(DIR, 'overlays', o);
      const sorted = (objs: K8sObject[]) => canonical([...objs].sort((x, y) => `${x.kind}/${x.metadata.name}`.localeCompare(`${y.kind}/${y.metadata.name}`)));
      expect(sorted(miniKustomize(dir)), o).toEqual(sorted(kubectlKustomize(dir)));
    }
  });

  it('the schema check catches what it should (self-check)', () => {
    const objs = structuredClone(rendered.production!);
    const d = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'aybiza')!;
    const c = pod(d).containers[0]! as Container & Obj;
    (c.env as Obj[]).push({ name: 'WORKERS', value: 2 });
    c.imagePolicy = 'Always';
    objs.find((o) => o.kind === 'HorizontalPodAutoscaler')!.spec = { ...(objs.find((o) => o.kind === 'HorizontalPodAutoscaler')!.spec as Obj), scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'nope' } };
    const errors = validate(objs).join('\n');
    expect(errors).toMatch(/env WORKERS value must be a string/);
    expect(errors).toMatch(/imagePolicy is not a field/);
    expect(errors).toMatch(/scaleTargetRef Deployment\/nope/);
  });

  it('every namespaced object is in the overlay\'s namespace, which the overlay creates', () => {
    for (const o of OVERLAYS) {
      const ns = rendered[o]!.find((x) => x.kind === 'Namespace')?.metadata.name;
      expect(ns, o).toBeTruthy();
      for (const x of rendered[o]!.filter((x) => x.kind !== 'Namespace')) expect(x.metadata.namespace, `${o} ${x.kind}/${x.metadata.name}`).toBe(ns);
    }
  });

  it('trial: one replica on the embedded database, its DATA_DIR on a volume claim, never scaled', () => {
    const objs = rendered.trial!;
    const [d, ...more] = aybizaWorkloads(objs);
    expect(more).toEqual([]);
    expect(d!.kind).toBe('Deployment');
    expect((d!.spec as Obj).replicas).toBe(1);
    expect(((d!.spec as Obj).strategy as Obj).type).toBe('Recreate');
    const c = pod(d!).containers[0]!;
    expect(env(c, 'DATABASE_URL')).toBeUndefined();
    expect(env(c, 'REDIS_URL')).toBeUndefined();
    const dataDir = env(c, 'DATA_DIR')?.value;
    const mount = c.volumeMounts?.find((m) => m.mountPath === dataDir);
    expect(mount, 'DATA_DIR is mounted').toBeDefined();
    const volume = pod(d!).volumes?.find((v) => v.name === mount!.name) as Obj;
    expect(volume.persistentVolumeClaim).toBeDefined();
    expect(objs.some((o) => o.kind === 'HorizontalPodAutoscaler')).toBe(false);
  });

  it('production: every Aybiza workload shares the external database and Redis and takes each secret from a Secret', () => {
    const ws = aybizaWorkloads(rendered.production!);
    expect(ws.map((w) => w.kind).sort()).toEqual(['DaemonSet', 'Deployment']);
    for (const w of ws) {
      const c = pod(w).containers.find((x) => x.image.startsWith('ghcr.io/aybiza/aybiza'))!;
      expect(env(c, 'NODE_ENV')?.value, w.kind).toBe('production');
      for (const name of FROM_SECRET) {
        const e = env(c, name);
        expect(e?.valueFrom?.secretKeyRef, `${w.kind} ${name}`).toBeDefined();
        expect(e?.value, `${w.kind} ${name} is a literal`).toBeUndefined();
      }
      // Several pods never keep data in an emptyDir or the embedded database.
      expect(JSON.stringify(pod(w).volumes ?? [])).not.toMatch(/emptyDir/);
      expect(env(c, 'DATABASE_URL')?.value).not.toBe('embedded');
    }
  });

  it('production: PDB, an HPA on aybiza_calls_active, SIP nodes on host networking, Kamailio in front', () => {
    const objs = rendered.production!;
    const deployment = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'aybiza')!;
    expect((deployment.spec as Obj).replicas).toBeGreaterThanOrEqual(2);
    expect(objs.filter((o) => o.kind === 'PodDisruptionBudget').length).toBeGreaterThanOrEqual(1);
    const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
    expect(((hpa.spec as Obj).scaleTargetRef as Obj).name).toBe('aybiza');
    expect(JSON.stringify((hpa.spec as Obj).metrics)).toMatch(/"name":"aybiza_calls_active"/);
    const sip = objs.find((o) => o.kind === 'DaemonSet')!;
    expect(pod(sip).hostNetwork).toBe(true);
    const sipEnv = pod(sip).containers[0]!;
    expect(Number(env(sipEnv, 'SIP_PORT')?.value)).toBeGreaterThan(0);
    expect(env(sipEnv, 'SIP_PUBLIC_IP')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.hostIP' } });
    // The HTTP Deployment leaves SIP to the SIP nodes.
    expect(env(pod(deployment).containers[0]!, 'SIP_PORT')?.value).toBe('0');
    const kamailio = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'kamailio')!;
    expect(pod(kamailio).hostNetwork).toBe(true);
    const args = (pod(kamailio).containers[0] as Container & { args: string[] }).args.join(' ');
    expect(args).toMatch(/-f \/etc\/kamailio\/kamailio\.cfg/);
    expect(args).toMatch(/DISPATCHER_LIST="\/etc\/kamailio\/dispatcher\/dispatcher\.list"/);
    const list = (objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'kamailio-dispatcher')!.data as Record<string, string>)['dispatcher.list']!;
    const sipPort = env(sipEnv, 'SIP_PORT')!.value;
    for (const line of list.trim().split('\n')) expect(line).toMatch(new RegExp(`^1 sip:[0-9.]+:${sipPort}$`));
  });
});
