// Startup refusals for NODE_ENV=production: a production server never runs
// silently on emulated providers, on a throw-away embedded database nobody
// chose, or with a generated encryption key. Each refusal is a ConfigError
// naming the variable to set (the CLI prints it and exits 1).
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { ConfigError, type Config } from './config.js';

/** How long the AWS default credential chain may take before we call it empty. */
export const AWS_PROBE_MS = 5000;

/**
 * Asks the AWS SDK's default credential chain (the one the Bedrock client
 * uses: environment, shared files and SSO, web identity / IRSA, ECS container
 * and EC2 instance roles) whether it yields credentials, within `timeoutMs`.
 */
export async function awsDefaultChainResolves(region: string, timeoutMs = AWS_PROBE_MS): Promise<boolean> {
  const client = new BedrockRuntimeClient({ region });
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
    });
    const probe = client.config.credentials().then((c) => !!c?.accessKeyId, () => false);
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}

/**
 * Credentials from the default chain count as configured (instance profiles,
 * IRSA, shared credential files without AWS_PROFILE): without this, EMULATORS=auto
 * would emulate Bedrock on a host that has a role. Probed only where it
 * matters (production, or EMULATORS=off), so development startup stays instant.
 */
export async function detectAwsCredentials(config: Config, timeoutMs = AWS_PROBE_MS): Promise<void> {
  if (config.awsCredentialsPresent || config.emulators === 'on') return;
  if (config.nodeEnv !== 'production' && config.emulators !== 'off') return;
  if (await awsDefaultChainResolves(config.awsRegion ?? 'us-east-1', timeoutMs)) config.awsCredentialsPresent = true;
}

/** Throws a ConfigError naming the variable when a production server would start unsafely. */
export function checkProduction(config: Config): void {
  if (config.nodeEnv !== 'production') return;
  if (!config.databaseUrl && !config.databaseEmbedded) {
    throw new ConfigError('DATABASE_URL', 'is required when NODE_ENV=production: a postgres:// URL shared by every replica (DATABASE_URL=embedded runs the single-node embedded database in DATA_DIR knowingly)');
  }
  if (!config.encryptionKey) {
    throw new ConfigError('AYBIZA_ENCRYPTION_KEY', 'is required when NODE_ENV=production (32 bytes, hex or base64): secrets at rest are encrypted with it, and a key generated on one node would not decrypt on another');
  }
  // EMULATORS=on emulates knowingly; EMULATORS=off refuses missing credentials itself.
  if (config.emulators !== 'auto') return;
  if (!config.deepgramApiKey) {
    throw new ConfigError('DEEPGRAM_API_KEY', 'is required when NODE_ENV=production and EMULATORS=auto: without it speech would silently be emulated (EMULATORS=on emulates knowingly; EMULATORS=off with DEEPGRAM_URL for a self-hosted Deepgram)');
  }
  if (!config.awsCredentialsPresent) {
    throw new ConfigError('AWS_ACCESS_KEY_ID', 'no AWS credentials found through the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity/IRSA, container or instance role) with NODE_ENV=production and EMULATORS=auto: the language model would silently be emulated (EMULATORS=on emulates knowingly)');
  }
}
