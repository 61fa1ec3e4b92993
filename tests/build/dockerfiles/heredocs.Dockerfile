# syntax=docker/dockerfile:1.4
FROM debian:bookworm
RUN <<EOT bash
  set -ex
  apt-get update
  apt-get install -y vim
EOT
COPY <<-EOF /etc/motd
	Welcome, $USER
	EOF
COPY <<'conf' <<"script" /srv/
listen $PORT
conf
#!/bin/sh
echo "$1"
script
RUN python3 <<'PY'
print("hello")
PY
