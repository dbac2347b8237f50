# Build: docker build -t kafka-backup-operator .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins --locked

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kafka-backup-operator /usr/local/bin/kafka-backup-operator
COPY --from=build /src/target/release/kubectl-kafkabackup /usr/local/bin/kubectl-kafkabackup
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kafka-backup-operator"]
CMD ["operator"]
