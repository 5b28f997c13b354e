// Configuration from the environment (CONTRACT §2), validated once at startup.
// A bad value throws ConfigError naming the variable; the CLI prints it and
// exits non-zero.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EMULATOR_PROFILE, EMULATOR_PROFILES, type EmulatorSettings } from './providers/emulators/profiles.js';
import { loadPrices, PriceTableError, type PriceTable } from './usage/prices.js';

// Config.emulator's type lives beside the profiles it is built from.
export type { EmulatorSettings };

export class ConfigError extends Error {
  readonly code = 'AYB_ERR_CONFIG';
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type EmulatorMode = 'auto' | 'on' | 'off';

export interface Config {
  nodeEnv: string;
  port: number;
  host: string;
  publicUrl: string;
  twilioAuthToken: string | undefined;
  /** Outbound calls over Twilio's REST API (src/outbound/twilio.ts): TWILIO_ACCOUNT_SID, an optional API key pair, TWILIO_API_URL. */
  twilioAccountSid: string | undefined;
  twilioApiKey: { sid: string; secret: string } | undefined;
  twilioApiUrl: string;
  adminApiKey: string | undefined;
  dataDir: string;
  /** External PostgreSQL; undefined: the embedded database in DATA_DIR. */
  databaseUrl: string | undefined;
  /** DATABASE_URL=embedded: the embedded database chosen knowingly (allowed in production). */
  databaseEmbedded: boolean;
  redisUrl: string | undefined;
  /** Prefix of every Redis key and channel (nodes of one deployment share it; deployments sharing a Redis differ). */
  redisPrefix: string;
  /** REDIS_URL names one node of a Redis Cluster. */
  redisCluster: boolean;
  deepgramApiKey: string | undefined;
  deepgramUrl: string | undefined;
  awsRegion: string | undefined;
  bedrockEndpoint: string | undefined;
  bedrockModelId: string;
  emulators: EmulatorMode;
  /** STT_SILENCE_GATE: long silence (by our VAD) is not streamed to speech-to-text. */
  sttSilenceGate: boolean;
  sipPort: number;
  /** SIP over TLS (RFC 3261 §26.2): its port (0: off), certificate chain and key (PEM), and extra CAs trusted for outbound trunks. */
  sipTls: SipTlsConfig | null;
  sipHost: string;
  sipPublicIp: string;
  rtpPortMin: number;
  rtpPortMax: number;
  logLevel: LogLevel;
  drainTimeoutS: number;
  maxConcurrentCalls: number;
  /** WORKERS: media worker threads (1 = everything on the main thread, as before). */
  workers: number;
  sipRealm: string;
  /** Per-source SIP budget for sources outside every trunk's allowedCidrs, KiB/s (0: off). */
  sipSourceLimitKbps: number;
  sipUntrustedLimitKbps: number;
  apiRateLimit: number;
  bedrockFallbackModels: string[];
  llmTtftDeadlineMs: number;
  /** PRICES_FILE over the published list prices (src/usage/prices.ts): what call usage costs. */
  prices: PriceTable;
  /** TOOLS_ALLOW_PRIVATE_NETWORKS: HTTP tools may reach loopback and private ranges (never link-local/metadata). */
  toolsAllowPrivateNetworks: boolean;
  /** AES-256-GCM key for secrets at rest (AYBIZA_ENCRYPTION_KEY); unset: generated into DATA_DIR (see src/store/secrets.ts). */
  encryptionKey: Buffer | undefined;
  /** Previous keys, for decrypting only (AYBIZA_ENCRYPTION_KEYS_OLD, comma-separated), so keys can rotate. */
  encryptionKeysOld: Buffer[];
  awsCredentialsPresent: boolean;
  /** Static AWS keys from the environment, if given there (else the SDK's default chain). */
  awsStaticCredentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  emulator: EmulatorSettings;
  /** RECORDINGS_S3_BUCKET (+ _ENDPOINT, _REGION): recordings go to this S3-compatible bucket; null: DATA_DIR/recordings. */
  recordingsS3: { bucket: string; endpoint: string | null; region: string } | null;
}

type Env = Record<string, string | undefined>;

/** The recordings bucket: S3's bucket naming rules (3–63 of a-z 0-9 . -), an http(s) endpoint for S3-compatible servers. */
function recordingsS3(env: Env): Config['recordingsS3'] {
  const bucket = str(env, 'RECORDINGS_S3_BUCKET');
  if (bucket === undefined) return null;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new ConfigError('RECORDINGS_S3_BUCKET', `is not a valid bucket name: ${JSON.stringify(bucket)}`);
  const region = str(env, 'RECORDINGS_S3_REGION') ?? str(env, 'AWS_REGION') ?? str(env, 'AWS_DEFAULT_REGION') ?? 'us-east-1';
  return { bucket, endpoint: url(env, 'RECORDINGS_S3_ENDPOINT', ['http:', 'https:']) ?? null, region };
}

export interface SipTlsConfig {
  port: number;
  cert: Buffer;
  key: Buffer;
  /** SIP_TLS_CA: CAs trusted (besides the system's) when we connect to a trunk over TLS. */
  ca: Buffer | undefined;
}

/** SIP_TLS_PORT with SIP_TLS_CERT and SIP_TLS_KEY (PEM files, read once here); SIP_TLS_CA alone is used for outbound TLS trunks. */
function sipTls(env: Env): SipTlsConfig | null {
  const port = int(env, 'SIP_TLS_PORT', 0, 0, 65535);
  const read = (name: string): Buffer | undefined => {
    const file = str(env, name);
    if (file === undefined) return undefined;
    try {
      const pem = fs.readFileSync(file);
      if (!pem.includes('-----BEGIN ')) throw new Error('not PEM');
      return pem;
    } catch (err) {
      throw new ConfigError(name, `cannot read a PEM file at ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read('SIP_TLS_CERT');
  const key = read('SIP_TLS_KEY');
  const ca = read('SIP_TLS_CA');
  if (port === 0) return ca ? { port: 0, cert: Buffer.alloc(0), key: Buffer.alloc(0), ca } : null;
  if (!cert || !key) throw new ConfigError(cert ? 'SIP_TLS_KEY' : 'SIP_TLS_CERT', 'is needed with SIP_TLS_PORT (a PEM certificate chain and its private key)');
  return { port, cert, key, ca };
}

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const v = Number(raw.trim());
  if (v < min || v > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${v}`);
  return v;
}

function num(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const v = Number(raw.trim());
  if (!Number.isFinite(v) || v < min || v > max) throw new ConfigError(name, `must be a number between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  return v;
}

function oneOf<T extends string>(env: Env, name: string, def: T, allowed: readonly T[]): T {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const v = raw.trim().toLowerCase() as T;
  if (!allowed.includes(v)) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  return v;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(name, `must be true or false, got ${JSON.stringify(raw)}`);
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a valid URL: ${JSON.stringify(raw)}`);
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${u.protocol}`);
  }
  return raw.replace(/\/+$/, '');
}

/** A 32-byte key given as 64 hex characters or as base64 (standard or URL-safe). Never echoes the value. */
export function parseKey32(name: string, raw: string): Buffer {
  const v = raw.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return Buffer.from(v, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(v)) {
    const b = Buffer.from(v, 'base64');
    if (b.length === 32) return b;
    throw new ConfigError(name, `must be 32 bytes (64 hex characters or 44 base64 characters); this decodes to ${b.length} bytes`);
  }
  throw new ConfigError(name, 'must be 32 bytes given as 64 hex characters or as base64 (e.g. `openssl rand -base64 32`)');
}

function key32(env: Env, name: string): Buffer | undefined {
  const raw = str(env, name);
  return raw === undefined ? undefined : parseKey32(name, raw);
}

function keyList(env: Env, name: string): Buffer[] {
  return (str(env, name) ?? '').split(',').map((k) => k.trim()).filter(Boolean).map((k) => parseKey32(name, k));
}

/**
 * CPUs this process may use: the scheduler's affinity (os.availableParallelism)
 * capped by a cgroup v2 CPU quota (a container's `limits.cpu`), which the
 * affinity does not show: 2 CPUs on a 64-core node are 2 workers, not 64.
 */
export function availableCpus(cpuMax = '/sys/fs/cgroup/cpu.max'): number {
  const cpus = os.availableParallelism();
  try {
    const [quota, period] = fs.readFileSync(cpuMax, 'utf8').trim().split(/\s+/);
    if (quota === 'max' || !quota || !period) return cpus;
    return Math.max(1, Math.min(cpus, Math.ceil(Number(quota) / Number(period)) || cpus));
  } catch {
    return cpus;
  }
}

/**
 * WORKERS: the CPUs available to the process, on either database. The
 * embedded one (PGlite, a single session) is shared safely by every worker's
 * connection: src/store/pglite-server.ts lets one connection hold the session
 * until it is idle again.
 */
function workerCount(env: Env): number {
  return int(env, 'WORKERS', availableCpus(), 1, 256);
}

function firstNonLoopbackAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function ipv4(env: Env, name: string, def: string): string {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(raw.trim());
  if (!m || m.slice(1).some((p) => Number(p) > 255)) throw new ConfigError(name, `must be an IPv4 address, got ${JSON.stringify(raw)}`);
  return raw.trim();
}

function realm(env: Env, name: string, def: string): string {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^[A-Za-z0-9.\-_]{1,64}$/.test(raw)) throw new ConfigError(name, 'must be 1-64 letters, digits, dots, dashes or underscores');
  return raw;
}

export function loadConfig(env: Env = process.env): Config {
  const port = int(env, 'PORT', 8080, 0, 65535);
  const host = str(env, 'HOST') ?? '0.0.0.0';
  const publicUrl = url(env, 'PUBLIC_URL', ['http:', 'https:']) ?? `http://localhost:${port}`;
  const nodeEnv = str(env, 'NODE_ENV') ?? 'development';
  const twilioAuthToken = str(env, 'TWILIO_AUTH_TOKEN');
  if (nodeEnv === 'production' && !twilioAuthToken) {
    throw new ConfigError('TWILIO_AUTH_TOKEN', 'is required when NODE_ENV=production');
  }
  const databaseEmbedded = str(env, 'DATABASE_URL')?.trim().toLowerCase() === 'embedded';
  const databaseUrl = databaseEmbedded ? undefined : url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);
  const redisPrefix = str(env, 'REDIS_PREFIX') ?? 'aybiza:';
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(redisPrefix)) throw new ConfigError('REDIS_PREFIX', 'must be 1-64 characters of letters, digits, _ . : -');
  const deepgramApiKey = str(env, 'DEEPGRAM_API_KEY');
  const deepgramUrl = url(env, 'DEEPGRAM_URL', ['http:', 'https:', 'ws:', 'wss:']) ?? (deepgramApiKey ? 'https://api.deepgram.com' : undefined);
  const rtpPortMin = int(env, 'RTP_PORT_MIN', 10000, 1024, 65534);
  const rtpPortMax = int(env, 'RTP_PORT_MAX', 20000, 1025, 65535);
  if (rtpPortMax <= rtpPortMin) throw new ConfigError('RTP_PORT_MAX', `must be greater than RTP_PORT_MIN (${rtpPortMin})`);
  return {
    nodeEnv,
    port,
    host,
    publicUrl,
    twilioAuthToken,
    ...twilioRest(env),
    adminApiKey: str(env, 'ADMIN_API_KEY'),
    dataDir: path.resolve(str(env, 'DATA_DIR') ?? './data'),
    databaseUrl,
    databaseEmbedded,
    redisUrl,
    redisPrefix,
    redisCluster: bool(env, 'REDIS_CLUSTER', false),
    deepgramApiKey,
    deepgramUrl,
    awsRegion: str(env, 'AWS_REGION') ?? str(env, 'AWS_DEFAULT_REGION'),
    recordingsS3: recordingsS3(env),
    bedrockEndpoint: url(env, 'BEDROCK_ENDPOINT', ['http:', 'https:']),
    bedrockModelId: str(env, 'BEDROCK_MODEL_ID') ?? 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
    emulators: oneOf(env, 'EMULATORS', 'auto', ['auto', 'on', 'off'] as const),
    sttSilenceGate: bool(env, 'STT_SILENCE_GATE', true),
    sipPort: int(env, 'SIP_PORT', 5060, 0, 65535),
    sipTls: sipTls(env),
    sipHost: str(env, 'SIP_HOST') ?? '0.0.0.0',
    sipPublicIp: ipv4(env, 'SIP_PUBLIC_IP', firstNonLoopbackAddress()),
    rtpPortMin,
    rtpPortMax,
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['debug', 'info', 'warn', 'error'] as const),
    drainTimeoutS: int(env, 'DRAIN_TIMEOUT_S', 30, 0, 3600),
    maxConcurrentCalls: int(env, 'MAX_CONCURRENT_CALLS', 500, 1, 100000),
    workers: workerCount(env),
    sipRealm: realm(env, 'SIP_REALM', 'aybiza'),
    sipSourceLimitKbps: int(env, 'SIP_SOURCE_LIMIT_KBPS', 64, 0, 1_000_000),
    sipUntrustedLimitKbps: int(env, 'SIP_UNTRUSTED_LIMIT_KBPS', 128, 0, 1_000_000),
    apiRateLimit: int(env, 'API_RATE_LIMIT', 50, 1, 1_000_000),
    bedrockFallbackModels: (str(env, 'BEDROCK_FALLBACK_MODEL_IDS') ?? 'us.anthropic.claude-sonnet-4-5-20250929-v1:0')
      .split(',').map((m) => m.trim()).filter(Boolean),
    llmTtftDeadlineMs: int(env, 'LLM_TTFT_DEADLINE_MS', 2500, 100, 60_000),
    prices: priceTable(env),
    toolsAllowPrivateNetworks: bool(env, 'TOOLS_ALLOW_PRIVATE_NETWORKS', false),
    encryptionKey: key32(env, 'AYBIZA_ENCRYPTION_KEY'),
    encryptionKeysOld: keyList(env, 'AYBIZA_ENCRYPTION_KEYS_OLD'),
    awsCredentialsPresent: ['AWS_ACCESS_KEY_ID', 'AWS_PROFILE', 'AWS_BEARER_TOKEN_BEDROCK', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI']
      .some((n) => str(env, n) !== undefined),
    awsStaticCredentials: str(env, 'AWS_ACCESS_KEY_ID') && str(env, 'AWS_SECRET_ACCESS_KEY')
      ? { accessKeyId: str(env, 'AWS_ACCESS_KEY_ID')!, secretAccessKey: str(env, 'AWS_SECRET_ACCESS_KEY')!, ...(str(env, 'AWS_SESSION_TOKEN') ? { sessionToken: str(env, 'AWS_SESSION_TOKEN') } : {}) }
      : undefined,
    emulator: emulatorSettings(env),
  };
}

/** TWILIO_ACCOUNT_SID (AC…), TWILIO_API_KEY (SK…) with TWILIO_API_SECRET, TWILIO_API_URL. */
function twilioRest(env: Env): Pick<Config, 'twilioAccountSid' | 'twilioApiKey' | 'twilioApiUrl'> {
  const sid = str(env, 'TWILIO_ACCOUNT_SID');
  if (sid !== undefined && !/^AC[0-9a-fA-F]{32}$/.test(sid)) throw new ConfigError('TWILIO_ACCOUNT_SID', 'must be AC followed by 32 hex digits');
  const key = str(env, 'TWILIO_API_KEY');
  const secret = str(env, 'TWILIO_API_SECRET');
  if ((key === undefined) !== (secret === undefined)) throw new ConfigError(key === undefined ? 'TWILIO_API_KEY' : 'TWILIO_API_SECRET', 'TWILIO_API_KEY and TWILIO_API_SECRET go together');
  if (key !== undefined && !/^SK[0-9a-fA-F]{32}$/.test(key)) throw new ConfigError('TWILIO_API_KEY', 'must be SK followed by 32 hex digits');
  if (key !== undefined && sid === undefined) throw new ConfigError('TWILIO_ACCOUNT_SID', 'is required with TWILIO_API_KEY (the key belongs to an account)');
  return {
    twilioAccountSid: sid,
    twilioApiKey: key !== undefined ? { sid: key, secret: secret! } : undefined,
    twilioApiUrl: url(env, 'TWILIO_API_URL', ['http:', 'https:']) ?? 'https://api.twilio.com',
  };
}

/** PRICES_FILE: a JSON price table merged over the defaults; anything wrong with it stops startup. */
function priceTable(env: Env): PriceTable {
  try {
    return loadPrices(str(env, 'PRICES_FILE'));
  } catch (err) {
    if (err instanceof PriceTableError) throw new ConfigError('PRICES_FILE', err.message);
    throw err;
  }
}

/** The emulator section alone (also read by `npm run load`, which starts the emulators as their own process). */
export function emulatorSettings(env: Env = process.env): EmulatorSettings {
  const profile = oneOf(env, 'EMULATOR_PROFILE', 'default', EMULATOR_PROFILES);
  const p = EMULATOR_PROFILE[profile];
  return {
    profile,
    sttFinalDelayMs: int(env, 'EMULATOR_STT_FINAL_DELAY_MS', p.sttFinalDelayMs, 0, 60_000),
    fluxEndOfTurnMs: int(env, 'EMULATOR_FLUX_EOT_MS', p.fluxEndOfTurnMs, 1, 60_000),
    llmTtftMs: int(env, 'EMULATOR_LLM_TTFT_MS', p.llmTtftMs, 0, 60_000),
    llmTokensPerSecond: int(env, 'EMULATOR_LLM_TOKENS_PER_S', p.llmTokensPerSecond, 1, 100_000),
    ttsFirstByteMs: int(env, 'EMULATOR_TTS_TTFB_MS', p.ttsFirstByteMs, 0, 60_000),
    ttsRealtimeFactor: num(env, 'EMULATOR_TTS_RTF', p.ttsRealtimeFactor, 0.001, 10),
    jitter: p.jitter,
    phrases: str(env, 'EMULATOR_PHRASES')?.split('|').map((x) => x.trim()).filter(Boolean),
  };
}
