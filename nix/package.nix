# One host (any crate of hosts/ with a host.toml) as a package.
#
# Why rustPlatform.buildRustPackage and not crane: it is part of nixpkgs, so the flake needs no
# input besides nixpkgs (one pin to audit and update), and `cargoLock.lockFile` vendors exactly
# the crates in Cargo.lock (crates.io only, no git dependencies, so no output hashes to keep).
# crane's advantage, caching the dependency build across the four hosts, matters little for
# four small binaries.
{
  lib,
  rustPlatform,
  callPackage,
  pkgs,
  host,
}:
let
  info = (import ./hosts.nix { inherit lib pkgs; }).${host};
  workspace = (lib.importTOML ../Cargo.toml).workspace.package;
in
rustPlatform.buildRustPackage {
  pname = host;
  inherit (workspace) version;

  src = callPackage ./source.nix { };
  cargoLock.lockFile = ../Cargo.lock;

  # Only this host (and what it depends on) is built from the workspace.
  cargoBuildFlags = [
    "-p"
    host
  ];

  inherit (info) nativeBuildInputs buildInputs;

  # The interpreter's store path, handed to h-resolve through the host's build.rs. H_STORE_ONLY
  # makes the build fail if any file of the compiled-in landlock table is outside /nix/store.
  env = {
    H_STORE_ONLY = "1";
  }
  // info.env;

  # The case tests run every script as root and as an unprivileged user, with a working
  # landlock: neither exists inside the Nix build sandbox. They run in the NixOS VM tests
  # (./vm-test.nix, `nix flake check`) instead, against this very package.
  doCheck = false;

  # For the VM tests (./vm-test.nix): the names the cases call the bare interpreter by.
  passthru = {
    inherit (info) controls;
  };

  meta = {
    inherit (info) description;
    license = lib.licenses.mit;
    mainProgram = host;
    platforms = lib.platforms.linux;
  };
}
