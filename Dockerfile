# stompbus in a container: `docker build -t stompbus .`, then e.g.
#   docker run -p 61613:61613 -p 61614:61614 -e KAFKA_BROKERS=kafka:9092 stompbus
# See docker-compose.kafka.yml for a Kafka cluster with three instances behind HAProxy.
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production

# What the build needs (npm install runs `prepare`, which compiles src/ to dist/).
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
# The console's page and script (the admin port serves them).
COPY assets ./assets
# Dev dependencies (TypeScript) are needed to build; dropped afterwards.
RUN npm install --include=dev --no-audit --no-fund \
    && npm run build \
    && npm prune --omit=dev

# WebSocket (/stomp, /healthz), STOMP over TCP and the admin port (/metrics, /console).
# In a container the admin port listens on every interface, so that Prometheus can
# scrape it; set STOMPBUS_ADMIN_TOKEN where that network is shared.
ENV STOMPBUS_ADMIN_HOST=0.0.0.0
EXPOSE 61614 61613 61615
USER node
CMD ["node", "bin/stompbus.js"]
