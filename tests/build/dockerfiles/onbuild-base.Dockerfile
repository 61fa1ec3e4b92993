FROM ruby:3.3
MAINTAINER Jane Doe <jane@example.com>
LABEL org.opencontainers.image.title="ruby-onbuild" \
      org.opencontainers.image.authors="Jane Doe" \
      "com.example.quoted key"="value with spaces"
ONBUILD COPY Gemfile Gemfile.lock /usr/src/app/
ONBUILD RUN bundle install
ONBUILD COPY . /usr/src/app
ENV APP_HOME /usr/src/app
WORKDIR $APP_HOME
