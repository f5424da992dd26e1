# What `cargo xtask nix-check` asserts on: the flake's outputs evaluated against the stand-in
# nixpkgs of ./nixpkgs, as JSON:
#
#   nix-instantiate --eval --strict --json --readonly-mode nix/tests/report.nix
#
# The stand-in's builders record their arguments (`standIn`); this file collects them for one
# system and lists every output's names for all systems.
let
  flake = import ../../flake.nix;
  standIn = (import ./nixpkgs/flake.nix).outputs { self = standIn; } // {
    outPath = ./nixpkgs;
  };
  outputs = flake.outputs {
    self = outputs // {
      outPath = ../..;
    };
    nixpkgs = standIn;
  };
  system = "x86_64-linux";
  pkgs = standIn.legacyPackages.${system};
  perSystem = builtins.mapAttrs (_: set: builtins.attrNames set);
  packageReport = package: {
    inherit (package) name;
    meta = package.meta or { };
    standIn = package.standIn or null;
  };
  overlayAdds = outputs.overlays.default pkgs pkgs;
in
{
  inputs = builtins.attrNames flake.inputs;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  outputs = builtins.attrNames outputs;
  packages = perSystem outputs.packages;
  apps = perSystem outputs.apps;
  checks = perSystem outputs.checks;
  devShells = perSystem outputs.devShells;
  formatter = builtins.attrNames outputs.formatter;
  overlays = builtins.attrNames outputs.overlays;

  inherit system;
  # Each package (and what its builder was given) on `system`.
  package = builtins.mapAttrs (_: packageReport) outputs.packages.${system};
  app = builtins.mapAttrs (_: app: {
    inherit (app) type program;
  }) outputs.apps.${system};
  formatterName = outputs.formatter.${system}.pname;
  devShell = outputs.devShells.${system}.default.standIn;
  check = builtins.mapAttrs (_: packageReport) outputs.checks.${system};
  # The overlay: what it adds, which of those nixpkgs (the stand-in, whose names are real) has,
  # and that its hosts are the same packages.
  overlayAdds = builtins.attrNames overlayAdds;
  overlayShadows = builtins.attrNames (builtins.intersectAttrs overlayAdds pkgs);
  overlayHosts = builtins.attrNames (builtins.head (builtins.attrValues overlayAdds));
}
