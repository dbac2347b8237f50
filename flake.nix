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
      in
      {
        # `nix develop`: the toolchain and the tools of a local cluster (kind + Redpanda + MinIO).
        devShells.default = pkgs.mkShell {
          packages = with pkgs; [
            rustc cargo cargo-nextest rustfmt clippy
            kubectl kind kubernetes-helm kcat redpanda-client minio minio-client
            python311
          ];
        };
      });
}
