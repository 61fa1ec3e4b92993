# escape=`

FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
RUN New-Item -ItemType Directory C:\Example ; `
    Write-Host 'made it'
COPY testfile.txt c:\
WORKDIR C:\Example
ADD https://example.com/tool.zip C:\tools\
CMD ["cmd", "/S", "/C", "dir"]
