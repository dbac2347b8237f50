{
  description = "kafka-backup-operator: back up Kafka topics to object storage and restore them";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
        tools = with pkgs; [
          rustc cargo cargo-nextest rustfmt clippy
          kubectl kind kubernetes-helm kcat redpanda-client minio minio-client
          python311
        ];
        # `nix run .#cluster`: kind + Redpanda + MinIO, then the chart from ./charts.
        cluster = pkgs.writeShellApplication {
          name = "kbo-cluster";
          runtimeInputs = tools;
          text = ''
            kind get clusters | grep -qx kbo || kind create cluster --name kbo
            kubectl create namespace kafka --dry-run=client -o yaml | kubectl apply -f -
            kubectl -n kafka run redpanda --image=docker.redpanda.com/redpandadata/redpanda:latest --port=9092 \
              --restart=Always -- redpanda start --overprovisioned --smp 1 --memory 1G --kafka-addr 0.0.0.0:9092 \
              --advertise-kafka-addr redpanda.kafka.svc:9092 || true
            kubectl -n kafka expose pod redpanda --port=9092 || true
            kubectl -n kafka run minio --image=quay.io/minio/minio:latest --port=9000 --restart=Always -- server /data || true
            kubectl -n kafka expose pod minio --port=9000 || true
            helm upgrade --install kafka-backup-operator ./charts/kafka-backup-operator \
              --namespace kafka-backup --create-namespace
            echo "cluster ready: kafka at redpanda.kafka.svc:9092, S3 at http://minio.kafka.svc:9000"
          '';
        };
      in
      {
        devShells.default = pkgs.mkShell { packages = tools; };
        packages.cluster = cluster;
        apps.cluster = { type = "app"; program = "${cluster}/bin/kbo-cluster"; };
      });
}
