// Versioned schema migrations, applied in order at startup and by
// `aybiza migrate`. Kept as TypeScript strings so the compiled package needs
// no extra files. Never edit a released migration: add the next one.
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
create table tenants (
  id text primary key,
  name text not null,
  max_concurrent_calls integer check (max_concurrent_calls is null or max_concurrent_calls > 0),
  created_at timestamptz not null default now()
);

-- Only SHA-256 hashes of keys are stored; the key itself is shown once.
create table api_keys (
  id text primary key,
  tenant_id text references tenants(id),
  name text not null default '',
  key_hash text not null unique,
  scopes text[] not null,
  platform_admin boolean not null default false,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  check (platform_admin or tenant_id is not null)
);

create table agents (
  id text primary key,
  tenant_id text not null references tenants(id),
  name text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index agents_tenant on agents (tenant_id, created_at desc, id desc);

-- Immutable: a change is a new version.
create table agent_versions (
  agent_id text not null references agents(id),
  version integer not null check (version > 0),
  config jsonb not null,
  created_by text not null,
  created_at timestamptz not null default now(),
  primary key (agent_id, version)
);

-- What is live: one version (blue/green), or a split sending canary_percent of calls to canary_version.
create table deployments (
  agent_id text primary key references agents(id),
  live_version integer not null,
  canary_version integer,
  canary_percent integer not null default 0 check (canary_percent between 0 and 100),
  updated_at timestamptz not null default now(),
  foreign key (agent_id, live_version) references agent_versions (agent_id, version),
  foreign key (agent_id, canary_version) references agent_versions (agent_id, version)
);

create table phone_numbers (
  id text primary key,
  tenant_id text not null references tenants(id),
  number text not null unique check (number ~ '^\\+[1-9][0-9]{6,14}$'),
  agent_id text not null references agents(id),
  created_at timestamptz not null default now()
);

-- Digest credentials are kept only as HA1 = H(username:realm:password), MD5 and SHA-256.
create table sip_trunks (
  id text primary key,
  tenant_id text not null references tenants(id),
  name text not null,
  allowed_cidrs cidr[] not null default '{}',
  username text,
  realm text not null,
  ha1_md5 text,
  ha1_sha256 text,
  allow_refer boolean not null default false,
  created_at timestamptz not null default now()
);
create unique index sip_trunks_username on sip_trunks (username) where username is not null;

create table calls (
  id text primary key,
  tenant_id text not null references tenants(id),
  agent_id text references agents(id),
  agent_version integer,
  transport text not null check (transport in ('twilio', 'sip')),
  external_id text not null,
  from_number text,
  to_number text,
  status text not null,
  started_at timestamptz not null default now(),
  answered_at timestamptz,
  ended_at timestamptz,
  end_reason text,
  media_stats jsonb,
  unique (transport, external_id)
);
create index calls_tenant on calls (tenant_id, started_at desc, id desc);

create table turns (
  call_id text not null references calls(id),
  seq integer not null,
  user_text text not null default '',
  assistant_text text not null default '',
  interrupted boolean not null default false,
  latencies jsonb not null default '{}',
  created_at timestamptz not null default now(),
  primary key (call_id, seq)
);

create table transcript_segments (
  id bigserial primary key,
  call_id text not null references calls(id),
  speaker text not null check (speaker in ('caller', 'agent')),
  text text not null,
  at timestamptz not null default now()
);
create index transcript_call on transcript_segments (call_id, id);

create table audit_log (
  id bigserial primary key,
  at timestamptz not null default now(),
  tenant_id text,
  actor text not null,
  action text not null,
  object_type text not null,
  object_id text not null,
  before jsonb,
  after jsonb
);
create index audit_tenant on audit_log (tenant_id, id desc);

-- Append-only, enforced by the database itself.
create function audit_log_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_log is append-only (% refused)', tg_op;
end;
$$;
create trigger audit_log_no_change before update or delete on audit_log
  for each row execute function audit_log_append_only();
create trigger audit_log_no_truncate before truncate on audit_log
  for each statement execute function audit_log_append_only();
`,
  },
  {
    version: 2,
    name: 'sip trunk broad CIDRs; secrets shared by all nodes',
    sql: `
alter table sip_trunks add column allow_broad_cidr boolean not null default false;

-- Secrets every node must share (e.g. the SIP digest nonce key), created once
-- by the first node with INSERT … ON CONFLICT DO NOTHING.
create table shared_secrets (
  name text primary key,
  value text not null,
  created_at timestamptz not null default now()
);
`,
  },
  {
    version: 3,
    name: 'api key prefix and last use',
    sql: `
-- The key's public first characters (to recognise it in GET /v1/api-keys) and
-- its last use, written in batches at most once a minute per key.
alter table api_keys add column key_prefix text;
alter table api_keys add column last_used_at timestamptz;
create index api_keys_tenant on api_keys (tenant_id, created_at desc, id desc);
`,
  },
  {
    version: 4,
    name: 'a SIP Call-ID is not a call key',
    sql: `
-- A new SIP dialog is a new call, even when it reuses another call's Call-ID
-- (which anyone can choose): (transport, external_id) is no longer unique.
-- A Twilio CallSid is issued by Twilio once per call and stays unique.
alter table calls drop constraint if exists calls_transport_external_id_key;
create index calls_external on calls (transport, external_id, started_at desc);
create unique index calls_twilio_sid on calls (external_id) where transport = 'twilio';
`,
  },
  {
    version: 5,
    name: 'mask tool auth headers already in the audit log',
    sql: `
-- Tool auth headers were written into the audit log in clear before they were
-- masked. Removing a secret is the one change this append-only log admits:
-- the trigger is lifted for this statement only. (Stored agent versions are
-- encrypted at startup by the application, which holds the key.)
create function aybiza_mask_tool_headers(j jsonb) returns jsonb language sql immutable as $$
  select case when jsonb_typeof(j->'tools') = 'array' then
    jsonb_set(j, '{tools}', coalesce((
      select jsonb_agg(case when jsonb_typeof(t->'authHeader') = 'string' and t->>'authHeader' not like '****%'
                            then jsonb_set(t, '{authHeader}', to_jsonb(case when length(t->>'authHeader') >= 12 then '****' || right(t->>'authHeader', 4) else '****' end))
                            else t end order by n)
        from jsonb_array_elements(j->'tools') with ordinality as x(t, n)), '[]'::jsonb))
  else j end
$$;
alter table audit_log disable trigger audit_log_no_change;
update audit_log set before = aybiza_mask_tool_headers(before), after = aybiza_mask_tool_headers(after)
 where object_type = 'agent' and (before ? 'tools' or after ? 'tools');
alter table audit_log enable trigger audit_log_no_change;
drop function aybiza_mask_tool_headers(jsonb);
`,
  },
  {
    version: 6,
    name: 'call quality',
    sql: `
-- The call's E-model estimate (src/media/quality.ts): R, MOS and per-direction
-- loss, burstiness and delay; null where nothing could be measured.
alter table calls add column quality jsonb;
`,
  },
  {
    version: 7,
    name: 'outbound calls: direction, answeredBy, variables, do-not-call, tenant outbound settings, daily dial counts',
    sql: `
-- Outbound calls (issue 17). external_id is 'pending:<call id>' until the
-- carrier names the call (a Twilio CallSid arrives with the create answer).
alter table calls add column direction text not null default 'inbound' check (direction in ('inbound', 'outbound'));
alter table calls add column answered_by text check (answered_by in ('human', 'machine', 'unknown'));
-- The dial as asked (amd, voicemail, variables, metadata, via, trunk), so any node can rebuild the call's agent.
alter table calls add column dial jsonb;
alter table calls add column campaign_id text;
alter table calls add column contact_id text;
create index calls_tenant_direction on calls (tenant_id, direction, started_at desc, id desc);

-- Toll-fraud guard: ISO 3166 alpha-2 codes a tenant may dial (empty: outbound off).
alter table tenants add column outbound_allowed_countries text[] not null default '{}';
alter table tenants add column outbound_daily_cap integer not null default 1000 check (outbound_daily_cap between 0 and 10000000);

create table dnc_numbers (
  tenant_id text not null references tenants(id),
  number text not null check (number ~ '^\\+[1-9][0-9]{6,14}$'),
  created_at timestamptz not null default now(),
  primary key (tenant_id, number)
);
create index dnc_tenant on dnc_numbers (tenant_id, created_at desc, number desc);

-- Dials per tenant per UTC day: one row, incremented atomically under the cap (every node).
create table outbound_dial_counts (
  tenant_id text not null references tenants(id),
  day date not null,
  dials integer not null default 0,
  primary key (tenant_id, day)
);
`,
  },
  {
    version: 8,
    name: 'campaigns: contacts queue, pacing, attempts',
    sql: `
-- Outbound campaigns (src/outbound/campaign-store.ts, campaigns.ts). The queue
-- lives here so that every node may dial one campaign: a node claims a due
-- contact with FOR UPDATE SKIP LOCKED while holding the campaign row, which
-- also makes the in-progress count (concurrency) and next_dial_at (the
-- cluster-wide pace: moved 1/callsPerSecond past each claim) exact.
create table campaigns (
  id text primary key,
  tenant_id text not null references tenants(id),
  agent_id text not null references agents(id),
  status text not null default 'draft' check (status in ('draft', 'running', 'paused', 'completed', 'canceled')),
  settings jsonb not null,
  concurrency integer not null check (concurrency between 1 and 1000),
  calls_per_second double precision not null check (calls_per_second > 0 and calls_per_second <= 100),
  next_dial_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz
);
create index campaigns_tenant on campaigns (tenant_id, created_at desc, id desc);
create index campaigns_running on campaigns (next_dial_at) where status = 'running';

-- A contact is pending (also between retries), in_progress (claimed by
-- lease_node until lease_until, dialled as call_id) or has its outcome.
create table campaign_contacts (
  id text primary key,
  campaign_id text not null references campaigns(id),
  to_number text not null check (to_number ~ '^\\+[1-9][0-9]{6,14}$'),
  variables jsonb not null default '{}',
  status text not null default 'pending'
    check (status in ('pending', 'in_progress', 'completed', 'busy', 'no_answer', 'failed', 'skipped_dnc')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_outcome text,
  call_id text,
  lease_node text,
  lease_until timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (campaign_id, to_number)
);
create index campaign_contacts_due on campaign_contacts (campaign_id, next_attempt_at, id) where status = 'pending';
create index campaign_contacts_active on campaign_contacts (campaign_id) where status = 'in_progress';

-- Every claim: which node, when, which call, how it ended.
create table campaign_attempts (
  id bigserial primary key,
  campaign_id text not null references campaigns(id),
  contact_id text not null references campaign_contacts(id),
  attempt integer not null,
  node text not null,
  call_id text,
  claimed_at timestamptz not null default now(),
  ended_at timestamptz,
  outcome text
);
create index campaign_attempts_contact on campaign_attempts (contact_id, attempt);
create index campaign_attempts_campaign on campaign_attempts (campaign_id, id);

-- A claimer that died after placing the call but before recording it: its
-- call is found by contact.
create index calls_contact on calls (contact_id) where contact_id is not null;
`,
  },
  {
    version: 9,
    name: 'sip trunk outbound settings',
    sql: `
-- Where calls placed through a trunk go (src/store/trunk-outbound.ts):
-- {uri, transport, username?, password? (sealed), fromUser?, fromDomain?}.
alter table sip_trunks add column outbound jsonb;
`,
  },
  {
    version: 10,
    name: 'webhooks: subscriptions, the delivery outbox and attempts',
    sql: `
-- Per-tenant webhook subscriptions (src/webhooks). secret is sealed with the
-- keyring (src/store/secrets.ts); it is the HMAC key of the signatures.
create table webhooks (
  id text primary key,
  tenant_id text not null references tenants(id),
  url text not null,
  events text[] not null,
  secret text not null,
  created_at timestamptz not null default now()
);
create index webhooks_tenant on webhooks (tenant_id, created_at desc, id desc);

-- An event is stored once, as the exact body every attempt sends (same id,
-- same bytes on every retry), and only when some webhook subscribes to it.
create table webhook_events (
  id text primary key,
  tenant_id text not null,
  type text not null,
  body text not null,
  created_at timestamptz not null default now()
);
create index webhook_events_age on webhook_events (created_at);

-- The outbox: one row per (webhook, event). A node claims due rows with
-- FOR UPDATE SKIP LOCKED and a lease (next_attempt_at moved past the
-- delivery timeout, claim_token set), so two nodes never send one row at once.
create table webhook_deliveries (
  webhook_id text not null references webhooks(id) on delete cascade,
  event_id text not null references webhook_events(id) on delete cascade,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  claim_token text,
  primary key (webhook_id, event_id)
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_event on webhook_deliveries (event_id);

-- Every attempt, for GET /v1/webhooks/{id}/deliveries; pruned by age.
create table webhook_attempts (
  id bigserial primary key,
  webhook_id text not null references webhooks(id) on delete cascade,
  event_id text not null,
  event_type text not null,
  attempt integer not null,
  outcome text not null check (outcome in ('delivered', 'failed', 'refused', 'gave_up')),
  http_status integer,
  error text,
  duration_ms integer not null,
  at timestamptz not null default now()
);
create index webhook_attempts_hook on webhook_attempts (webhook_id, id desc);
create index webhook_attempts_age on webhook_attempts (at);
`,
  },
  {
    version: 11,
    name: 'post-call analysis queue and memory across calls',
    sql: `
-- The analysis of a call (src/postcall): summary, sentiment, outcome, quality,
-- structured data, the model's token usage, or the error that stopped it.
alter table calls add column analysis jsonb;

-- The durable queue of calls to analyse: one row per call, claimed FOR UPDATE
-- SKIP LOCKED with a lease (next_attempt_at moved past the request timeout,
-- claim_token set), retried with backoff, kept as done/failed for a while.
create table analysis_jobs (
  call_id text primary key references calls(id) on delete cascade,
  tenant_id text not null,
  status text not null default 'pending' check (status in ('pending', 'done', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  claim_token text,
  last_error text,
  created_at timestamptz not null default now(),
  finished_at timestamptz
);
create index analysis_jobs_due on analysis_jobs (next_attempt_at) where status = 'pending';
create index analysis_jobs_finished on analysis_jobs (finished_at) where status <> 'pending';

-- What an agent remembers of a caller: one summary per analysed call, keyed
-- by an HMAC of the caller's number (the key is sealed in shared_secrets),
-- never the number itself; deleted when expires_at passes.
create table call_memories (
  call_id text primary key,
  tenant_id text not null references tenants(id),
  number_hash text not null,
  agent_id text,
  summary text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index call_memories_number on call_memories (tenant_id, number_hash, created_at desc);
create index call_memories_expiry on call_memories (expires_at);
`,
  },
  {
    version: 12,
    name: 'call recordings and their retention',
    sql: `
-- A call's recording (src/recordings): where it is (storage local: under
-- DATA_DIR/recordings; s3: in RECORDINGS_S3_BUCKET) and its size. The row is
-- made when recording starts, so a file a crash left behind is still found;
-- bytes/duration_ms are set when the file is complete (ready_at). The
-- retention sweeper deletes the file or object and sets deleted_at.
create table recordings (
  call_id text primary key references calls(id) on delete cascade,
  tenant_id text not null references tenants(id),
  storage text not null check (storage in ('local', 's3')),
  key text not null,
  channels text not null check (channels in ('dual', 'mixed')),
  bytes bigint not null default 0,
  duration_ms integer not null default 0,
  created_at timestamptz not null default now(),
  ready_at timestamptz,
  deleted_at timestamptz
);
create index recordings_age on recordings (tenant_id, created_at) where deleted_at is null;

-- Days a tenant's recordings are kept; null: kept until deleted.
alter table tenants add column recording_retention_days integer check (recording_retention_days is null or recording_retention_days between 1 and 36500);
`,
  },
  {
    version: 13,
    name: 'usage and cost per call',
    sql: `
-- What a call used and what it cost (src/usage): the metered lines, priced,
-- and one integer micro-dollar column per component (so sums are exact and
-- GET /v1/usage is one aggregate over the calls_tenant index). Null until
-- the call is priced at hang-up; the post-call analysis adds its LLM line.
alter table calls add column usage jsonb;
alter table calls add column cost_telephony_micros bigint;
alter table calls add column cost_stt_micros bigint;
alter table calls add column cost_tts_micros bigint;
alter table calls add column cost_llm_micros bigint;
`,
  },
];
