# Builds every taskwire binary into one small image; docker-compose.yml runs
# the executor, workers, triggerers and the example Go SDK runtime from it.
# The worker-python and worker-java targets add a language runtime and the
# example tasks of that language.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/executor ./cmd/worker ./cmd/triggerer ./examples/gotasks

FROM maven:3.9-eclipse-temurin-21 AS javabuild
WORKDIR /src
COPY sdk/java sdk/java
COPY protocol/testdata protocol/testdata
COPY examples/javatasks examples/javatasks
# The SDK's jar (its JUnit tests run here too), then the example against it.
RUN mvn -q -B -f sdk/java package && mkdir -p /out/java \
 && cp sdk/java/target/taskwire-sdk.jar /out/java/ \
 && javac -cp /out/java/taskwire-sdk.jar -d /out/java/classes examples/javatasks/Tasks.java

FROM python:3.12-slim-bookworm AS worker-python
COPY --from=build /out/worker /usr/local/bin/
COPY sdk/python /tmp/sdk-python
RUN pip install --no-cache-dir /tmp/sdk-python && rm -rf /tmp/sdk-python
COPY examples/pytasks /opt/taskwire/examples/pytasks
USER 65534:65534
ENTRYPOINT []

FROM eclipse-temurin:21-jre AS worker-java
COPY --from=build /out/worker /usr/local/bin/
COPY --from=javabuild /out/java /opt/taskwire/java
USER 65534:65534
ENTRYPOINT []

FROM debian:bookworm-slim
# curl for the compose healthchecks (GET /readyz).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
USER 65534:65534
ENTRYPOINT []

# taskwire as Airflow's executor (docker-compose.airflow.yml): Apache
# Airflow's own image, pinned as scripts/airflow-env.sh pins it, plus the
# taskwire-airflow package (TaskwireExecutor for the scheduler, the workload
# runner for workers), the taskwire Python SDK (the worker's prefork zygote,
# taskwire.prefork, which forks each workload from a process that imported
# Airflow once) and taskwire's worker binary, so the same image runs
# Airflow's services and the taskwire workers that run Airflow's tasks.
FROM apache/airflow:3.3.2-python3.11 AS airflow
COPY --from=build /out/worker /usr/local/bin/
COPY --chown=airflow:root integrations/airflow /opt/taskwire/integrations/airflow
COPY --chown=airflow:root sdk/python /opt/taskwire/sdk/python
RUN pip install --no-cache-dir --no-deps /opt/taskwire/integrations/airflow /opt/taskwire/sdk/python
