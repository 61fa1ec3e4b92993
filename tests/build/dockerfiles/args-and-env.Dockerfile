ARG REGISTRY=docker.io
ARG BASE=library/alpine
ARG TAG
FROM ${REGISTRY}/${BASE}:${TAG:-3.19}
ARG REGISTRY
ARG VERSION=1.0 BUILD_DATE
ENV APP_VERSION=$VERSION \
    PATH=/opt/app/bin:$PATH \
    EMPTY= \
    QUOTED="a \"quoted\" value" \
    SINGLE='$NOT_EXPANDED'
LABEL version="${APP_VERSION}" build-date=${BUILD_DATE:+set}
EXPOSE 80 443/tcp ${METRICS_PORT:-9090}/tcp
USER ${APP_USER:-nobody}
VOLUME /data /var/log/app
