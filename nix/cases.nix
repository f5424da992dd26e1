# The hosts' case-test harnesses (`hosts/*/tests/cases.rs`, harness = false), built for the VM
# tests. They cannot run here: every case runs as an unprivileged user under a real landlock,
# which the Nix build sandbox does not provide.
#
# A harness knows two build-time paths (compiled in through env!): the host crate's directory,
# where its case folders live, and the host binary (CARGO_BIN_EXE_<host>). Both are recorded
# here, per host, so that ./vm-test.nix can recreate them inside the VM — with the case folders
# copied from this output and the binary taken from the host's package, so that the VM tests
# exercise exactly what users install.
#
#   $out/share/h-cases/<host>/harness       the test binary
#   $out/share/h-cases/<host>/crate/        the host crate (cases/, attacks/, ...)
#   $out/share/h-cases/<host>/manifest-dir  the crate's path at build time
#   $out/share/h-cases/<host>/binary-path   CARGO_BIN_EXE_<host> at build time
{
  lib,
  stdenv,
  callPackage,
  rustPlatform,
  cargo,
  rustc,
  jq,
}:
let
  names = import ./names.nix;
  cargoEnv = callPackage ./cargo-env.nix { };
  packageFlags = lib.concatMapStringsSep " " (host: "-p ${host}") names.hosts;
in
stdenv.mkDerivation {
  pname = "h-case-harnesses";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;

  src = callPackage ./source.nix { };
  cargoDeps = rustPlatform.importCargoLock { lockFile = ../Cargo.lock; };

  nativeBuildInputs = [
    rustPlatform.cargoSetupHook
    cargo
    rustc
    jq
  ]
  ++ cargoEnv.nativeBuildInputs;
  inherit (cargoEnv) buildInputs env;

  buildPhase = ''
    runHook preBuild
    cargo test --release --offline --no-run ${packageFlags} --test cases \
      --message-format=json-render-diagnostics > artifacts.json
    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall
    for host in ${lib.concatStringsSep " " names.hosts}; do
      harness=$(jq -r --arg host "$host" 'select(.reason == "compiler-artifact"
          and .target.name == "cases" and .profile.test
          and (.manifest_path | endswith("/hosts/" + $host + "/Cargo.toml"))) | .executable' artifacts.json)
      binary=$(jq -r --arg host "$host" 'select(.reason == "compiler-artifact"
          and .target.name == $host and (.target.kind | index("bin")) and (.profile.test | not))
          | .executable' artifacts.json | head -n 1)
      if [ -z "$harness" ] || [ -z "$binary" ]; then
        echo "no case harness or binary for $host in cargo's output" >&2
        exit 1
      fi
      crate=$PWD/hosts/$host
      dest=$out/share/h-cases/$host
      install -Dm755 "$harness" "$dest/harness"
      mkdir -p "$dest/crate"
      cp -r "$crate"/. "$dest/crate"/
      printf '%s\n' "$crate" > "$dest/manifest-dir"
      printf '%s\n' "$binary" > "$dest/binary-path"
    done
    runHook postInstall
  '';

  # The harness paths point into the build directory, not the store: nothing to keep alive.
  dontPatchShebangs = true;
}
