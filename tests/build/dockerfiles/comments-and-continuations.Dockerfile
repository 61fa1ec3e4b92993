  # leading indented comment

FROM busybox

# a comment line right before an instruction
RUN echo one \
    # a comment inside the continuation is dropped
    two \

    three

run   echo   lower-case keyword   
RUN echo "trailing backslash at end of file" \
