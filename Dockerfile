# syntax=docker/dockerfile:1
# The gateway's production image. Node 20: the same major the tests run on.

# --- build: compile TypeScript to dist/ (needs the dev dependencies: typescript) ---------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only, so the runtime image carries no compiler or test kit ---
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime -------------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
# Files stay owned by root and read-only to the process: a compromised gateway cannot rewrite itself.
# package.json is needed at run time: its "type": "module" makes dist/*.js load as ES modules.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The node image's unprivileged user (uid 1000).
USER node
EXPOSE 8080
# Node's global fetch: no curl in the slim image. Exits 0 only on a 2xx from /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM (Docker's default) makes the gateway stop accepting, finish in-flight requests and exit.
# Exec form: node itself receives the signal, not a shell that would swallow it.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
