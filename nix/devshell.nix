# `nix develop`: the toolchain and every host's interpreter, with the same interpreter paths the
# Nix build hands to h-resolve (./hosts.nix), so `cargo xtask` in this shell resolves store
# paths. H_STORE_ONLY is left unset here; `H_STORE_ONLY=1 cargo xtask ...` reproduces the Nix
# build's rule that nothing outside /nix/store may enter a policy.
{
  lib,
  pkgs,
  mkShell,
  callPackage,
  runCommand,
  rustc,
  cargo,
  clippy,
  rustfmt,
  strace,
  hyperfine,
  jq,
}:
let
  cargoEnv = callPackage ./cargo-env.nix { };
  hosts = lib.attrValues (import ./hosts.nix { inherit lib pkgs; });
  # The tests and `cargo xtask bench` call the bare interpreters by the names of the manifests'
  # controls (Debian's: lua5.4, python3, node, bash).
  controls = lib.foldl' (acc: info: acc // info.controls) { } hosts;
  controlCommands = runCommand "h-control-commands" { } (
    ''
      mkdir -p $out/bin
    ''
    + lib.concatStringsSep "" (lib.mapAttrsToList (name: program: "ln -s ${program} $out/bin/${name}\n") controls)
  );
in
mkShell {
  packages = [
    rustc
    cargo
    clippy
    rustfmt
    strace
    hyperfine
    jq
    controlCommands
  ]
  ++ map (info: info.interpreter) hosts;
  env = removeAttrs cargoEnv.env [ "H_STORE_ONLY" ];
}
