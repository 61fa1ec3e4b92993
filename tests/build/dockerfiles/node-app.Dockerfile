FROM node:20 AS deps
WORKDIR /usr/src/app
COPY package*.json ./
RUN npm ci --omit=dev

FROM node:20-slim
ENV NODE_ENV production
WORKDIR /usr/src/app
COPY --from=deps /usr/src/app/node_modules ./node_modules
COPY . .
EXPOSE 3000/tcp
VOLUME ["/usr/src/app/uploads"]
STOPSIGNAL SIGINT
CMD node server.js
