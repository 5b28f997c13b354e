// Per-call variables for outbound calls: `{{name}}` placeholders in the
// agent's prompt and greeting are filled with the dial's values, verbatim and
// in one pass (a value that itself contains `{{x}}` is not expanded again).
// A placeholder with no value stays in the prompt (the model sees the gap)
// and is dropped from the greeting (never spoken as "curly braces").
import type { AgentConfig } from '../store/types.js';

export const MAX_VARIABLES = 50;
export const MAX_VARIABLE_NAME = 64;
export const MAX_VARIABLE_VALUE = 1000;
/** Names a placeholder may use (also the API schema's propertyNames rule). */
export const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}/g;

/** A problem with a variables object, or null; the API answers it as a 422. */
export function variablesProblem(vars: Record<string, unknown>): string | null {
  const names = Object.keys(vars);
  if (names.length > MAX_VARIABLES) return `at most ${MAX_VARIABLES} variables`;
  for (const name of names) {
    if (!VARIABLE_NAME.test(name)) return `${name.slice(0, 80)}: a variable name is a letter or _ then up to 63 letters, digits or _`;
    const v = vars[name];
    if (typeof v !== 'string') return `${name}: must be a string`;
    if (v.length > MAX_VARIABLE_VALUE) return `${name}: must have at most ${MAX_VARIABLE_VALUE} characters`;
    if (v.includes('\0')) return `${name}: must not contain NUL`;
  }
  return null;
}

export function fillPlaceholders(text: string, vars: Record<string, string>, keepUnknown: boolean): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => (Object.hasOwn(vars, name) ? vars[name] : keepUnknown ? whole : ''));
}

/** The agent's config for this call: prompt and greeting with the variables filled in. */
export function applyVariables(config: AgentConfig, vars: Record<string, string> | undefined): AgentConfig {
  const v = vars ?? {};
  const prompt = fillPlaceholders(config.prompt, v, true);
  const greeting = config.greeting === undefined ? undefined : fillPlaceholders(config.greeting, v, false).replace(/\s{2,}/g, ' ').trim();
  if (prompt === config.prompt && greeting === config.greeting) return config;
  return { ...config, prompt, ...(greeting === undefined ? {} : { greeting }) };
}
