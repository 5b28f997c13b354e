# syntax=docker/dockerfile:1
# Multi-stage build: compile the C++ addon and the TypeScript in a builder with
# the toolchain, then copy only what runs into a slim image.
# uWebSockets.js's native binaries need glibc (not musl/alpine).

FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY native ./native
COPY src ./src
COPY sip ./sip
COPY bench ./bench
# npm ci runs our install script (node-gyp rebuild) and prepare (tsc).
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
# NODE_ENV=production refuses to start (exit 1, naming the variable) without:
#   DATABASE_URL           postgres://… (or DATABASE_URL=embedded: the single-node
#                          embedded database in DATA_DIR, chosen knowingly; mount a volume)
#   AYBIZA_ENCRYPTION_KEY  32 bytes, hex or base64 (secrets at rest)
#   TWILIO_AUTH_TOKEN
#   DEEPGRAM_API_KEY and AWS credentials (env keys, AWS_PROFILE, IRSA, container or
#                          instance role) while EMULATORS=auto; EMULATORS=on runs the
#                          emulators knowingly (demo: -e EMULATORS=on -e DATABASE_URL=embedded ...)
ENV NODE_ENV=production \
    DATA_DIR=/var/lib/aybiza \
    PORT=8080 \
    SIP_PORT=5060
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
# The addons: media (codecs, VAD, jitter buffer…), reuseport (WORKERS connection steering), thread_exit.
COPY --from=build /app/build/Release/*.node ./build/Release/
COPY --from=build /app/dist ./dist
# Fixed uid/gid 10001: the Kubernetes manifests run as 10001 (runAsUser/fsGroup),
# so files in DATA_DIR volumes belong to the same user in both.
RUN groupadd --system --gid 10001 aybiza && useradd --system --uid 10001 --gid aybiza --home /var/lib/aybiza aybiza \
 && mkdir -p /var/lib/aybiza && chown aybiza:aybiza /var/lib/aybiza
USER 10001:10001
# 5061/tcp: SIP over TLS, when SIP_TLS_PORT=5061 with SIP_TLS_CERT/SIP_TLS_KEY (mounted files) are set.
EXPOSE 8080/tcp 5060/udp 5060/tcp 5061/tcp 10000-20000/udp
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# SIGTERM drains (readyz 503, active calls finish up to DRAIN_TIMEOUT_S), then exits 0.
STOPSIGNAL SIGTERM
# V8 heap flags: see src/server/node-flags.ts (short GC pauses keep the 20 ms pacing even).
CMD ["node", "--initial-old-space-size=256", "--max-semi-space-size=4", "--min-semi-space-size=4", "--no-parallel-scavenge", "dist/src/cli.js", "serve"]
