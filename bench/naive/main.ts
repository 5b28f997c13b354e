// `node dist/bench/naive/main.js [--port P]`: the naive baseline server as a
// process of its own (so `npm run load` charges it its own CPU). Prints one
// JSON line with its URL, then serves until SIGTERM/SIGINT; GET /stats gives
// its counters (frames sent, for the dropped-frame count).
import { startNaiveServer } from './server.js';

const i = process.argv.indexOf('--port');
const port = i >= 0 ? Number(process.argv[i + 1]) : 0;
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be a port number');
const server = await startNaiveServer({ port });
process.stdout.write(JSON.stringify({ naiveUrl: server.url }) + '\n');
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
