// Rendered Kubernetes objects against the Kubernetes OpenAPI schemas, through
// `kubernetes-models` (generated from them: types, enums, required fields,
// formats). Those schemas allow unknown fields, so validate.ts still checks
// field names and the references between objects.
import * as apps from 'kubernetes-models/apps/v1';
import * as autoscaling from 'kubernetes-models/autoscaling/v2';
import * as policy from 'kubernetes-models/policy/v1';
import * as core from 'kubernetes-models/v1';
import type { K8sObject } from './render.js';

type Model = new (data: unknown) => { validate(): void };
const GROUPS: Record<string, Record<string, unknown>> = { v1: core, 'apps/v1': apps, 'policy/v1': policy, 'autoscaling/v2': autoscaling };

/** Schema errors, one line each ("Kind/name: /path message"); empty when every object validates. */
export function validateWithModels(objects: K8sObject[]): string[] {
  const errors: string[] = [];
  for (const o of objects) {
    const where = `${o.kind}/${o.metadata?.name}`;
    const model = GROUPS[o.apiVersion]?.[o.kind] as Model | undefined;
    if (typeof model !== 'function') {
      errors.push(`${where}: no Kubernetes schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new model(o).validate();
    } catch (err) {
      const list = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
      if (!list) throw err;
      for (const e of list) errors.push(`${where}: ${e.instancePath || '/'} ${e.message ?? 'invalid'}`);
    }
  }
  return errors;
}
