// Our own check of rendered Kubernetes objects, for what our manifests use,
// beside the OpenAPI schemas (schemas.ts, kubernetes-models), which allow
// unknown fields and know nothing of the other objects: known apiVersion/kind
// pairs, fields that exist (typos are errors), value types (an env value must
// be a string), names, quantities, ports, and every reference inside the
// rendering (selectors, named ports, volumes, ConfigMaps, claims, service
// accounts, the HPA's target).
import type { K8sObject } from './render.js';

const KINDS: Record<string, string[]> = {
  v1: ['Namespace', 'ServiceAccount', 'ConfigMap', 'Secret', 'Service', 'PersistentVolumeClaim'],
  'apps/v1': ['Deployment', 'DaemonSet', 'StatefulSet'],
  'policy/v1': ['PodDisruptionBudget'],
  'autoscaling/v2': ['HorizontalPodAutoscaler'],
};
const TOP: Record<string, string[]> = {
  ConfigMap: ['data', 'binaryData', 'immutable'], Secret: ['data', 'stringData', 'type', 'immutable'], ServiceAccount: ['automountServiceAccountToken'],
};
const WORKLOAD_SPEC = ['replicas', 'selector', 'template', 'strategy', 'updateStrategy', 'minReadySeconds', 'revisionHistoryLimit', 'progressDeadlineSeconds', 'serviceName'];
const POD_SPEC = ['containers', 'initContainers', 'volumes', 'serviceAccountName', 'terminationGracePeriodSeconds', 'securityContext', 'affinity', 'nodeSelector', 'tolerations', 'hostNetwork', 'dnsPolicy', 'priorityClassName', 'topologySpreadConstraints'];
const CONTAINER = ['name', 'image', 'args', 'command', 'env', 'envFrom', 'ports', 'readinessProbe', 'livenessProbe', 'startupProbe', 'resources', 'securityContext', 'volumeMounts', 'imagePullPolicy', 'workingDir', 'lifecycle'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const QUANTITY = /^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Problems found in the rendering, one line each ("Kind/name: what"); empty when valid. */
export function validate(objects: K8sObject[]): string[] {
  const errors: string[] = [];
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const names = (kind: string) => new Set(byKind(kind).map((o) => o.metadata.name));
  const workloads = objects.filter((o) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(o.kind));
  const podLabels = (w: K8sObject) => ((((w.spec as Obj).template as Obj)?.metadata as Obj)?.labels ?? {}) as Record<string, string>;
  const selects = (sel: Record<string, string>) => workloads.filter((w) => Object.entries(sel).every(([k, v]) => podLabels(w)[k] === v));

  for (const o of objects) {
    const where = `${o.kind}/${o.metadata?.name}`;
    const bad = (msg: string) => errors.push(`${where}: ${msg}`);
    const fields = (v: unknown, allowed: string[], at: string) => {
      if (!isObj(v)) return bad(`${at} must be an object`);
      for (const k of Object.keys(v)) if (!allowed.includes(k)) bad(`${at}.${k} is not a field`);
    };
    if (!KINDS[o.apiVersion]?.includes(o.kind)) bad(`unknown apiVersion/kind ${o.apiVersion} ${o.kind}`);
    fields(o, ['apiVersion', 'kind', 'metadata', ...(TOP[o.kind] ?? ['spec'])], 'object');
    if (!DNS_LABEL.test(o.metadata?.name ?? '')) bad('metadata.name is not a DNS label');
    for (const [k, v] of Object.entries(o.metadata?.labels ?? {})) if (typeof v !== 'string' || !LABEL_VALUE.test(v)) bad(`label ${k} has an invalid value`);
    if (o.kind === 'ConfigMap') for (const [k, v] of Object.entries((o.data ?? {}) as Obj)) if (typeof v !== 'string') bad(`data.${k} must be a string`);

    if (workloads.includes(o)) {
      const spec = o.spec as Obj;
      fields(spec, WORKLOAD_SPEC, 'spec');
      const match = ((spec.selector as Obj)?.matchLabels ?? {}) as Record<string, string>;
      if (!Object.keys(match).length) bad('spec.selector.matchLabels is empty');
      for (const [k, v] of Object.entries(match)) if (podLabels(o)[k] !== v) bad(`selector ${k}=${v} does not match the pod template`);
      const strategy = (spec.strategy ?? spec.updateStrategy) as Obj | undefined;
      if (strategy?.type === 'Recreate' && strategy.rollingUpdate) bad('a Recreate strategy takes no rollingUpdate');
      const pod = (spec.template as Obj).spec as Obj;
      fields(pod, POD_SPEC, 'pod spec');
      if (pod.serviceAccountName && !names('ServiceAccount').has(pod.serviceAccountName as string)) bad(`service account ${pod.serviceAccountName} is not in the rendering`);
      const volumes = new Map(((pod.volumes ?? []) as Obj[]).map((v) => [v.name as string, v]));
      for (const v of volumes.values()) {
        const cm = (v.configMap as Obj | undefined)?.name as string | undefined;
        if (cm && !names('ConfigMap').has(cm)) bad(`volume ${v.name}: ConfigMap ${cm} is not in the rendering`);
        const claim = (v.persistentVolumeClaim as Obj | undefined)?.claimName as string | undefined;
        if (claim && !names('PersistentVolumeClaim').has(claim)) bad(`volume ${v.name}: claim ${claim} is not in the rendering`);
      }
      const containers = (pod.containers ?? []) as Obj[];
      if (!containers.length) bad('no containers');
      for (const c of containers) {
        const at = `container ${c.name}`;
        fields(c, CONTAINER, at);
        if (!DNS_LABEL.test(String(c.name))) bad(`${at}: name is not a DNS label`);
        if (typeof c.image !== 'string' || !c.image) bad(`${at}: no image`);
        for (const a of [...((c.args ?? []) as unknown[]), ...((c.command ?? []) as unknown[])]) if (typeof a !== 'string') bad(`${at}: args/command must be strings`);
        const ports = (c.ports ?? []) as Obj[];
        for (const p of ports) {
          if (!Number.isInteger(p.containerPort) || (p.containerPort as number) < 1 || (p.containerPort as number) > 65535) bad(`${at}: bad containerPort`);
          if (p.protocol && !['TCP', 'UDP', 'SCTP'].includes(p.protocol as string)) bad(`${at}: bad protocol ${p.protocol}`);
          if (p.name && (String(p.name).length > 15 || !DNS_LABEL.test(String(p.name)))) bad(`${at}: port name ${p.name} is not an IANA service name`);
          if (pod.hostNetwork && p.hostPort !== undefined && p.hostPort !== p.containerPort) bad(`${at}: with hostNetwork, hostPort must equal containerPort`);
        }
        for (const e of (c.env ?? []) as Obj[]) {
          if (!ENV_NAME.test(String(e.name))) bad(`${at}: bad env name ${e.name}`);
          const hasValue = 'value' in e;
          if (hasValue === ('valueFrom' in e)) bad(`${at}: env ${e.name} needs exactly one of value and valueFrom`);
          if (hasValue && typeof e.value !== 'string') bad(`${at}: env ${e.name} value must be a string (quote it)`);
          if (isObj(e.valueFrom)) {
            const src = Object.keys(e.valueFrom);
            if (src.length !== 1 || !['secretKeyRef', 'configMapKeyRef', 'fieldRef', 'resourceFieldRef'].includes(src[0]!)) bad(`${at}: env ${e.name} has a bad valueFrom`);
            const ref = (e.valueFrom.secretKeyRef ?? e.valueFrom.configMapKeyRef) as Obj | undefined;
            if (ref && (typeof ref.name !== 'string' || typeof ref.key !== 'string')) bad(`${at}: env ${e.name} ref needs name and key`);
          }
        }
        for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
          const port = ((c[probe] as Obj | undefined)?.httpGet as Obj | undefined)?.port;
          if (typeof port === 'string' && !ports.some((p) => p.name === port)) bad(`${at}: ${probe} names port ${port}, which the container does not have`);
        }
        for (const m of (c.volumeMounts ?? []) as Obj[]) if (!volumes.has(m.name as string)) bad(`${at}: mount ${m.name} has no volume`);
        const res = (c.resources ?? {}) as Record<string, Record<string, unknown>>;
        for (const part of ['requests', 'limits']) for (const [k, v] of Object.entries(res[part] ?? {})) if (!QUANTITY.test(String(v)) || typeof v === 'number') bad(`${at}: ${part}.${k} is not a quantity string`);
      }
    }

    if (o.kind === 'Service') {
      const spec = o.spec as Obj;
      const targets = selects((spec.selector ?? {}) as Record<string, string>);
      if (!targets.length) bad('selector matches no workload');
      for (const p of (spec.ports ?? []) as Obj[]) {
        if (typeof p.targetPort !== 'string') continue;
        const found = targets.some((w) => ((((w.spec as Obj).template as Obj).spec as Obj).containers as Obj[]).some((c) => ((c.ports ?? []) as Obj[]).some((cp) => cp.name === p.targetPort)));
        if (!found) bad(`targetPort ${p.targetPort} is no container port of the selected pods`);
      }
    }
    if (o.kind === 'PodDisruptionBudget') {
      const spec = o.spec as Obj;
      if (('minAvailable' in spec) === ('maxUnavailable' in spec)) bad('needs exactly one of minAvailable and maxUnavailable');
      if (!selects(((spec.selector as Obj)?.matchLabels ?? {}) as Record<string, string>).length) bad('selector matches no workload');
    }
    if (o.kind === 'HorizontalPodAutoscaler') {
      const spec = o.spec as Obj;
      const ref = spec.scaleTargetRef as Obj;
      if (!objects.some((x) => x.kind === ref?.kind && x.metadata.name === ref?.name && x.apiVersion === ref?.apiVersion)) bad(`scaleTargetRef ${ref?.kind}/${ref?.name} is not in the rendering`);
      if (!((spec.minReplicas as number) >= 1 && (spec.maxReplicas as number) >= (spec.minReplicas as number))) bad('needs 1 <= minReplicas <= maxReplicas');
      for (const m of (spec.metrics ?? []) as Obj[]) {
        const pods = m.pods as Obj | undefined;
        if (m.type !== 'Pods' || !pods) continue;
        const target = pods.target as Obj;
        if (typeof (pods.metric as Obj)?.name !== 'string') bad('Pods metric without a name');
        if (target?.type !== 'AverageValue' || !QUANTITY.test(String(target.averageValue)) || typeof target.averageValue !== 'string') bad('Pods metric needs target.type AverageValue and an averageValue quantity string');
      }
    }
  }
  return errors;
}
