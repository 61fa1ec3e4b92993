FROM scratch
COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf
COPY --chmod=755 --chown=app:app scripts/*.sh /usr/local/bin/
COPY ["file with spaces.txt", "/dest dir/"]
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/app.tar.gz /opt/
ADD archive.tar.gz /opt/
COPY --link --parents ./a/b/c /x/
