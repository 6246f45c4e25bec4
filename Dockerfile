# ITS: the API and the projection workers in one image (`node bin/its.js serve [--role …]`).
# The TypeScript sources run through tsx (a runtime dependency), so there is no build step.
FROM node:20-slim

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data

WORKDIR /app

# Dependencies first, so a source change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY projections ./projections
COPY migrations ./migrations
COPY web ./web

# DATA_DIR holds the embedded database when DATABASE_URL is unset.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node

EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Node is PID 1 here and handles SIGTERM itself: stop accepting, finish requests, checkpoint, exit.
CMD ["node", "bin/its.js", "serve"]
