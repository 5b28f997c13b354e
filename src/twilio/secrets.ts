// TWILIO_AUTH_TOKEN, or one generated once into DATA_DIR (development only;
// production requires the real token, see src/config.ts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { log } from '../log.js';

export function twilioAuthToken(configured: string | undefined, dataDir: string): string {
  if (configured) return configured;
  const file = path.join(dataDir, 'twilio-auth-token');
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    if (t) return t;
  } catch {
    /* first start */
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const token = crypto.randomBytes(16).toString('hex');
  fs.writeFileSync(file, token + '\n', { mode: 0o600 });
  log.warn('TWILIO_AUTH_TOKEN is not set: generated one into DATA_DIR; real Twilio requests will fail signature checks until you set it', { file });
  return token;
}
