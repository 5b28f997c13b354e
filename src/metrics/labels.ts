// Closed label sets. Every Prometheus series is permanent (heap, scrape time on
// the event loop that paces audio), so no label may take a value from outside
// input: each one is mapped here to a fixed list, anything else is "other".
// SIP methods and codes: sipMethodLabel / sipCodeLabel in ./index.ts.

/** HTTP status codes the server answers with; anything else is "other". */
const HTTP_STATUS = new Set([200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 413, 414, 415, 416, 422, 426, 429, 431, 500, 501, 502, 503, 504].map(String));

export function httpStatusLabel(status: number): string {
  const s = String(status);
  return HTTP_STATUS.has(s) ? s : 'other';
}

/**
 * Provider failure kinds: the SDK's error names (Bedrock's documented
 * exceptions, Node/undici network errors) are outside input: a provider or a
 * proxy in between may send any name or code.
 */
const PROVIDER_KINDS = new Set([
  // Bedrock ConverseStream exceptions
  'ThrottlingException', 'ModelNotReadyException', 'ServiceUnavailableException', 'InternalServerException', 'ModelTimeoutException',
  'ModelErrorException', 'ModelStreamErrorException', 'ValidationException', 'AccessDeniedException', 'ResourceNotFoundException',
  'ServiceQuotaExceededException', 'ExpiredTokenException', 'UnrecognizedClientException', 'CredentialsProviderError',
  // ours and the runtime's
  'TTFTDeadline', 'TimeoutError', 'AbortError', 'Error', 'TypeError', 'gave_up', 'reconnect_failed',
]);

export function providerErrorKind(name: unknown): string {
  return typeof name === 'string' && PROVIDER_KINDS.has(name) ? name : 'other';
}

/** WebSocket close codes (RFC 6455 §7.4.1 and Deepgram's 4xxx ones we know) as `close_<code>`; else `close_other`. */
const CLOSE_CODES = new Set(['1000', '1001', '1002', '1003', '1005', '1006', '1007', '1008', '1009', '1010', '1011', '1012', '1013', '1014', '1015', '4000', '4001', '4008', '4011', 'unknown']);

export function wsCloseKind(code: unknown): string {
  const c = code === undefined || code === null ? 'unknown' : String(code);
  return CLOSE_CODES.has(c) ? `close_${c}` : 'close_other';
}

/**
 * A safety net for labels whose values are tokens written in our code (bad
 * input reasons, sources): a value that is not a short snake_case token, or
 * that comes after `max` distinct values, is "other". A reason built from
 * outside input by mistake then costs one series, not one per request.
 */
export function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (!/^[a-z0-9_]{1,48}$/.test(value) || seen.size >= max) return 'other';
    seen.add(value);
    return value;
  };
}
