FROM alpine:3.19
HEALTHCHECK NONE
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
HEALTHCHECK --interval=1m30s --timeout=10s --start-period=5s --retries=5 CMD ["wget", "-qO-", "http://127.0.0.1/"]
RUN ["echo", "exec form"]
RUN [ "not", json ]
ENTRYPOINT exec nginx -g 'daemon off;'
CMD [ ]
