# The stand-in's `lib`: exactly the functions h's Nix files use, each written here after the
# behaviour of nixpkgs' function of the same name (lib/attrsets.nix, lib/lists.nix,
# lib/strings.nix, lib/modules.nix, lib/meta.nix, lib/fileset). Anything else is missing, so a
# new use of lib fails the offline check until it is checked against nixpkgs and added here.
let
  fold = op: nul: list: builtins.foldl' op nul list;
  attrValues = set: map (name: set.${name}) (builtins.attrNames set);
  concatMap = builtins.concatMap;
  unique = fold (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
  # A file set is { paths to exclude } relative to one root; only what source.nix needs.
  fileset = {
    maybeMissing = path: {
      _type = "fileset-member";
      inherit path;
    };
    unions = members: {
      _type = "fileset-union";
      paths = map (
        member:
        if member._type or null == "fileset-member" then
          member.path
        else
          throw "stand-in lib.fileset.unions: takes lib.fileset.maybeMissing values"
      ) members;
    };
    difference = root: union: {
      _type = "fileset-difference";
      inherit root;
      excluded = map toString union.paths;
    };
    toSource =
      { root, fileset }@args:
      if builtins.attrNames args != [ "fileset" "root" ] then
        throw "stand-in lib.fileset.toSource: unexpected arguments"
      else if fileset._type or null != "fileset-difference" || fileset.root != root then
        throw "stand-in lib.fileset.toSource: takes the difference of the root and a union"
      else
        builtins.path {
          path = root;
          name = "source";
          filter = path: _type: !(builtins.elem path fileset.excluded);
        };
  };
in
{
  inherit
    attrValues
    concatMap
    unique
    fileset
    ;
  attrNames = builtins.attrNames;
  foldl' = builtins.foldl';
  mapAttrs = builtins.mapAttrs;
  filterAttrs =
    pred: set:
    builtins.listToAttrs (
      builtins.concatMap (
        name:
        if pred name set.${name} then
          [
            {
              inherit name;
              value = set.${name};
            }
          ]
        else
          [ ]
      ) (builtins.attrNames set)
    );
  mapAttrsToList = f: set: map (name: f name set.${name}) (builtins.attrNames set);
  genAttrs =
    names: f:
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = f name;
      }) names
    );
  optionals = cond: list: if cond then list else [ ];
  concatStringsSep = builtins.concatStringsSep;
  concatMapStringsSep = sep: f: list: builtins.concatStringsSep sep (map f list);
  hasPrefix = prefix: string: builtins.substring 0 (builtins.stringLength prefix) string == prefix;
  importTOML = path: builtins.fromTOML (builtins.readFile path);
  # Module-system wrappers, in nixpkgs' representation (lib/modules.nix).
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkForce = content: {
    _type = "override";
    priority = 50;
    inherit content;
  };
  # nixpkgs warns and guesses when meta.mainProgram is missing; the stand-in refuses.
  getExe =
    package:
    if package ? meta.mainProgram then
      "${package}/bin/${package.meta.mainProgram}"
    else
      throw "stand-in lib.getExe: ${package.name or "a package"} has no meta.mainProgram";
  licenses.mit = {
    spdxId = "MIT";
    shortName = "mit";
  };
  platforms.linux = [
    "x86_64-linux"
    "aarch64-linux"
  ];
}
