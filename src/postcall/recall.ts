// Memory into the call: when a session starts for an agent with memory on,
// the caller's earlier summaries are looked up (one indexed query, started
// before the greeting plays, so it is there long before the first reply
// needs it) and kept beside the session; the conversation appends them to
// its system prompt (src/pipeline/conversation.ts reads recalled()). A
// lookup that fails or has not answered yet leaves the prompt as it is:
// memory never delays or fails a call.
import type { CallSession } from '../call/session.js';
import type { ControlPlane } from '../store/index.js';
import { reportInternalError } from '../guard.js';

const recalledText = new WeakMap<object, string>();

/** Starts the lookup for a new session (nothing for agents without memory). */
export function recallFor(store: ControlPlane, session: Pick<CallSession, 'callId' | 'agent'>): void {
  if (!session.agent.config.memory?.enabled) return;
  void (async () => {
    const call = await store.calls.byId(session.callId);
    if (!call || call.tenantId !== session.agent.tenantId) return;
    const text = await store.memory.recall(call);
    if (text) recalledText.set(session, text);
  })().catch((err) => reportInternalError('store', err, { what: 'memory recall' }));
}

/** The memory section of the session's system prompt ('' when there is none). */
export function recalled(session: object): string {
  return recalledText.get(session) ?? '';
}
