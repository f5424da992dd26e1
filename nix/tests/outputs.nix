# The flake's outputs, listed without nixpkgs (which cannot be fetched everywhere the offline
# check runs):
#
#   nix-instantiate --eval --strict --json nix/tests/outputs.nix
#
# nixpkgs is replaced by a stand-in that throws as soon as anything beyond output names is
# evaluated; flake.nix keeps its names in builtins (nix/names.nix) so that this works.
# `cargo xtask nix-check` compares the result with what the flake must offer.
let
  flake = import ../../flake.nix;
  unavailable =
    what: throw "nix/tests/outputs.nix: ${what} needs nixpkgs, which the offline check does not have";
  nixpkgs = {
    lib = unavailable "nixpkgs.lib";
    legacyPackages = unavailable "nixpkgs.legacyPackages";
    outPath = unavailable "nixpkgs.outPath";
  };
  outputs = flake.outputs {
    self = outputs // {
      outPath = ../..;
    };
    inherit nixpkgs;
  };
  perSystem = builtins.mapAttrs (system: set: builtins.attrNames set);
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
  # What the overlay adds to a package set (its values are not evaluated).
  overlayAdds = builtins.attrNames (outputs.overlays.default { } { });
}
