// The control plane's data, as the call path and the API see it.
// The call path (Twilio gateway, SIP, pipeline) depends only on the
// interfaces at the bottom: AgentResolver, CallStore, TrunkDirectory.
import type { CallQuality } from '../media/quality.js';

export const TENANT_SCOPES = ['agents:read', 'agents:write', 'numbers:write', 'trunks:write', 'calls:read', 'audit:read', 'keys:write', 'calls:write', 'webhooks:read', 'webhooks:write', 'memory:write', 'recordings:read'] as const;
export type Scope = (typeof TENANT_SCOPES)[number];
/** A new key's scopes when none are asked for: everything but keys:write (minting keys is asked for explicitly). */
export const DEFAULT_KEY_SCOPES: readonly Scope[] = TENANT_SCOPES.filter((s) => s !== 'keys:write');

/** An API key as GET /v1/api-keys shows it: never the key or its hash. */
export interface ApiKeyInfo {
  id: string;
  tenantId: string | null;
  name: string;
  scopes: Scope[];
  /** The key's first characters (public part), to recognise it; null for ADMIN_API_KEY and keys made before it was recorded. */
  prefix: string | null;
  platformAdmin: boolean;
  createdAt: string;
  /** Updated at most once a minute per key (batched). */
  lastUsedAt: string | null;
}

export interface Tenant {
  id: string;
  name: string;
  maxConcurrentCalls: number | null;
  /** Outbound guards (src/outbound/guards.ts): ISO 3166 alpha-2 countries it may dial (none: outbound off), dials per UTC day. */
  outbound: TenantOutbound;
  /** Days call recordings are kept (src/recordings/sweeper.ts); null: until deleted. */
  recordingRetentionDays: number | null;
  createdAt: string;
}

export interface TenantOutbound {
  allowedCountries: string[];
  dailyCap: number;
}

export interface Principal {
  keyId: string;
  keyName: string;
  tenantId: string | null;
  platformAdmin: boolean;
  scopes: Scope[];
}

export interface WebhookTool {
  name: string;
  description: string;
  /** JSON schema of the tool's input. */
  parameters: Record<string, unknown>;
  url: string;
  timeoutMs?: number;
  authHeader?: string;
}

export interface AgentConfig {
  name: string;
  prompt: string;
  greeting?: string;
  voice?: string;
  language?: string;
  llm?: { model?: string; temperature?: number; maxTokens?: number };
  /** `model`: nova-3 (default) or flux-general-en; the eot* fields apply to Flux only (Deepgram's listen v2 parameters). */
  stt?: { model?: string; endpointingMs?: number; eotThreshold?: number; eagerEotThreshold?: number; eotTimeoutMs?: number };
  tools?: WebhookTool[];
  latencyBudgetMs?: number;
  /** Preemptive generation (default true): the LLM starts on an early end-of-turn signal; its reply is kept only if the confirmed turn has the same words. */
  preemptive?: boolean;
  /** Answering-machine detection settings for outbound SIP calls (src/call/amd.ts AmdSettings); unset fields take the defaults. */
  amd?: Partial<import('../call/amd.js').AmdSettings>;
  /** Where transfer_call may go: E.164 numbers or sip: URIs, `*` wildcards (src/pipeline/transfer-policy.ts). None: no transfers. */
  transfer?: { targets: string[] };
  /** Post-call analysis (src/postcall): the agent's outcome categories, quality rubric and JSON Schema of the data to extract. */
  analysis?: AgentAnalysis;
  /** Memory across calls (src/postcall/memory.ts): summaries of a caller's earlier calls join the system prompt. */
  memory?: { enabled: boolean; retentionDays?: number };
  /** Call recording (src/recordings): both sides as heard, 8 kHz μ-law WAV; dual = stereo (caller left), mixed = mono. Default off. */
  recording?: { enabled: boolean; channels?: 'dual' | 'mixed' };
}

export interface AgentAnalysis {
  /** Bedrock model id; default the agent's llm.model, else BEDROCK_MODEL_ID. */
  model?: string;
  outcomes: string[];
  rubric?: string;
  /** JSON Schema (draft-07, an object) of `data`. */
  schema?: Record<string, unknown>;
}

/** A call's analysis, as GET /v1/calls/{id} shows it. */
export interface CallAnalysis {
  summary: string | null;
  sentiment: { label: 'positive' | 'neutral' | 'negative'; score: number } | null;
  outcome: string | null;
  qualityScore: number | null;
  data: Record<string, unknown> | null;
  /** Why the analysis (or its structured data) is missing. */
  error?: string;
  /** The analysis request's model and Bedrock token usage (all attempts summed). */
  usage: { model: string; inputTokens: number; outputTokens: number; requests: number };
  analyzedAt: string;
}

export interface AgentVersion {
  agentId: string;
  version: number;
  config: AgentConfig;
  createdBy: string;
  createdAt: string;
}

export interface Deployment {
  liveVersion: number;
  canaryVersion: number | null;
  canaryPercent: number;
}

export interface Agent extends AgentConfig {
  id: string;
  tenantId: string;
  version: number;
  liveVersion: number;
  deployment: Deployment;
  createdAt: string;
  updatedAt: string;
}

export interface PhoneNumber {
  id: string;
  tenantId: string;
  number: string;
  agentId: string;
  createdAt: string;
}

export interface SipTrunk {
  id: string;
  tenantId: string;
  name: string;
  allowedCidrs: string[];
  username: string | null;
  realm: string;
  allowRefer: boolean;
  createdAt: string;
}

/** A trunk with its digest secrets (HA1 hashes), for the SIP server only. */
export interface SipTrunkSecrets extends SipTrunk {
  ha1Md5: string | null;
  ha1Sha256: string | null;
}

export type Transport = 'twilio' | 'sip';

export interface CallRecord {
  id: string;
  tenantId: string;
  agentId: string | null;
  agentVersion: number | null;
  transport: Transport;
  externalId: string;
  from: string | null;
  to: string | null;
  status: string;
  startedAt: string;
  answeredAt: string | null;
  endedAt: string | null;
  endReason: string | null;
  mediaStats: Record<string, unknown> | null;
  /** E-model estimate (R, MOS, per direction; src/media/quality.ts); null when not measured (Twilio calls, no media). */
  quality: CallQuality | null;
  direction: 'inbound' | 'outbound';
  /** Outbound calls with answering-machine detection: human | machine | unknown; null before a verdict (or without AMD). */
  answeredBy: 'human' | 'machine' | 'unknown' | null;
  /** Outbound: the dial's variables and metadata as given to POST /v1/calls. */
  variables?: Record<string, string>;
  metadata?: Record<string, unknown>;
  campaignId?: string | null;
  contactId?: string | null;
}

export interface TurnRecord {
  seq: number;
  userText: string;
  /** What the caller actually heard (cut at a barge-in). */
  assistantText: string;
  interrupted: boolean;
  /** Per-stage latencies in milliseconds. */
  latencies: Record<string, number>;
  createdAt?: string;
}

export interface TranscriptSegment {
  speaker: 'caller' | 'agent';
  text: string;
  at: string;
}

export interface CallDetail extends CallRecord {
  /** What the call cost (src/usage); null until it was priced at hang-up. */
  cost: import('../usage/types.js').CallCost | null;
  /** The metered lines the cost was priced from. */
  usage: import('../usage/types.js').CallUsageRecord | null;
  turns: TurnRecord[];
  transcript: TranscriptSegment[];
  /** null until the post-call analysis has run (or when the agent has none). */
  analysis: CallAnalysis | null;
  /** The call's recording, when it has one (GET /v1/calls/{id}/recording streams it). */
  recording?: import('../recordings/rows.js').RecordingSummary;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** What a call needs to know about the number it reached. */
export interface ResolvedAgent {
  tenantId: string;
  agentId: string;
  agentVersion: number;
  config: AgentConfig;
  maxConcurrentCalls: number | null;
}

export interface AgentResolver {
  /** Number → agent → live version (A/B split applied), from the cache when warm. */
  resolveNumber(e164: string): Promise<ResolvedAgent | null>;
}

export interface NewCall {
  tenantId: string;
  agentId: string | null;
  agentVersion: number | null;
  transport: Transport;
  externalId: string;
  from: string | null;
  to: string | null;
  status?: string;
}

export interface CallStore {
  /** Creates the record, or returns the existing one for (transport, externalId). */
  createCall(c: NewCall): Promise<CallRecord>;
  findCall(transport: Transport, externalId: string): Promise<CallRecord | null>;
  /** Idempotent: an ended call keeps its first end time and reason. */
  updateCallStatus(callId: string, status: string, endReason?: string): Promise<void>;
  addTurn(callId: string, turn: TurnRecord): Promise<void>;
  /** Stored PII-redacted. */
  addTranscript(callId: string, speaker: 'caller' | 'agent', text: string): Promise<void>;
  setMediaStats(callId: string, stats: Record<string, unknown>): Promise<void>;
  setQuality(callId: string, quality: CallQuality): Promise<void>;
  /** The session's metered usage at hang-up, priced and stored on the call (src/usage); once per call. */
  recordUsage?(callId: string, usage: import('../usage/types.js').MeteredCall): Promise<void>;
}

export interface TrunkDirectory {
  /** Trunks whose allowedCidrs contain the address. */
  trunksForAddress(ip: string): Promise<SipTrunkSecrets[]>;
  trunkForUsername(username: string): Promise<SipTrunkSecrets | null>;
}
