# Check: the filter verification, inside the Nix build.
#
# - `cargo xtask codegen --check`: the committed seccomp programs are what filters/*.toml compile to;
# - `cargo xtask verify`: every committed program (each host x x86_64/aarch64) evaluated by the
#   cBPF interpreter against its policy, report kept in $out/verify.txt;
# - `cargo test -p h-filter -p xtask -p h-sandbox -p h-host`: the unit tests that need no
#   unprivileged user (h-filter's: the emitter, the verifier and its mutation test).
{
  lib,
  stdenv,
  callPackage,
  rustPlatform,
  cargo,
  rustc,
}:
let
  cargoEnv = callPackage ./cargo-env.nix { };
in
stdenv.mkDerivation {
  pname = "h-filter-verification";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;

  src = callPackage ./source.nix { };
  cargoDeps = rustPlatform.importCargoLock { lockFile = ../Cargo.lock; };

  nativeBuildInputs = [
    rustPlatform.cargoSetupHook
    cargo
    rustc
  ]
  ++ cargoEnv.nativeBuildInputs;
  inherit (cargoEnv) buildInputs env;

  buildPhase = ''
    runHook preBuild
    cargo xtask codegen --check
    cargo xtask verify > verify.txt
    cat verify.txt
    cargo test --offline -p h-filter -p xtask -p h-sandbox -p h-host
    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall
    install -Dm644 -t $out verify.txt
    runHook postInstall
  '';
}
