# `nix develop`: the toolchain and the four interpreters, with the same interpreter paths the
# Nix build hands to h-resolve (./hosts.nix), so `cargo xtask` in this shell resolves store
# paths. H_STORE_ONLY is left unset here; `H_STORE_ONLY=1 cargo xtask ...` reproduces the Nix
# build's rule that nothing outside /nix/store may enter a policy.
{
  mkShell,
  callPackage,
  runCommand,
  rustc,
  cargo,
  clippy,
  rustfmt,
  python3,
  nodejs,
  bash,
  lua5_4,
  strace,
  hyperfine,
  jq,
}:
let
  cargoEnv = callPackage ./cargo-env.nix { };
  # The tests and `cargo xtask bench` call the bare interpreter by its Debian name.
  lua54Command = runCommand "lua5.4-command" { } ''
    mkdir -p $out/bin
    ln -s ${lua5_4}/bin/lua $out/bin/lua5.4
  '';
in
mkShell {
  packages = [
    rustc
    cargo
    clippy
    rustfmt
    python3
    nodejs
    bash
    lua5_4
    lua54Command
    strace
    hyperfine
    jq
  ];
  env = removeAttrs cargoEnv.env [ "H_STORE_ONLY" ];
}
