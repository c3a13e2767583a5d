# Debian packages the tests need: Chromium (the dashboard's browser test),
# iproute2 and iptables (tests that build network namespaces), docker-compose
# (.ci/run checks docker-compose.yml). The JDK, Maven and python3 are
# checked by the steps that use them.
need chromium chromium
need ip iproute2
need iptables iptables
need docker-compose docker-compose
