# Evaluates Vouch's NixOS modules and flake against the stand-in
# (standin.nix): every option has a type, a description and, unless set
# here, a default its type accepts; the configuration each module produces
# is returned (with mkIf/mkForce/mkBefore resolved) for the test to check.
#
#   nix-instantiate --eval --strict --json tests/nix/eval.nix
let
  s = import ./standin.nix;
  inherit (s) lib pkgs;

  resolve = v:
    if builtins.isAttrs v && v ? _type then
      (if v._type == "if" then (if v.condition then resolve v.content else null)
       else if v._type == "override" || v._type == "order" then resolve v.content
       else v)
    else if builtins.isAttrs v && !(v ? outPath) then
      let r = builtins.mapAttrs (_: resolve) v;
      in lib.genAttrs (builtins.filter (n: r.${n} != null) (builtins.attrNames r)) (n: r.${n})
    else v;

  # Evaluates `module` for the service `name` with the options in `set`.
  evalModule = module: name: set:
    let
      result = import module { inherit lib pkgs config; };
      options = result.options.services.${name};
      value = n: o:
        let v = if set ? ${n} then set.${n} else o.default or (throw "${name}.${n}: no default and not set");
        in assert o.type.check v || throw "${name}.${n}: ${builtins.toJSON v} is not a ${o.type.name}"; v;
      cfg = builtins.mapAttrs value options;
      config = { services.${name} = cfg; };
      unknown = builtins.filter (n: !(options ? ${n})) (builtins.attrNames set);
      described = builtins.all (n: options.${n}.description != "") (builtins.attrNames options);
    in
    assert unknown == [ ] || throw "${name}: unknown options ${toString unknown}";
    assert described;
    { options = builtins.attrNames options; config = let r = resolve result.config; in if r == null then { } else r; };

  modules = import ../../dist/nix/modules;
  flake = (import ../../flake.nix).outputs {
    self = flake;
    nixpkgs = { inherit lib; legacyPackages.x86_64-linux = pkgs; };
  };
  nonFlake = import ../../default.nix { inherit pkgs; };
in
{
  log = evalModule modules.vouch-log "vouch-log" {
    enable = true;
    settings = { origin = "log.example.org/vouch"; listen = "0.0.0.0:8443"; };
    openFirewall = true;
  };
  logDisabled = evalModule modules.vouch-log "vouch-log" { };
  witness = evalModule modules.vouch-witness "vouch-witness" {
    enable = true;
    keyFile = "/etc/vouch/witness.key";
  };
  substituter = evalModule modules.vouch-substituter "vouch-substituter" {
    enable = true;
    logUrl = "https://log.example.org/vouch";
    policy = "log log.example.org/vouch+01234567+AAAA\nquorum none\n";
    trustedBuilders = [ "cache.example.org-1:AAAA" ];
  };
  builder = evalModule modules.vouch-builder "vouch-builder" {
    enable = true;
    keyFile = "/etc/nix/builder.sec";
    logUrl = "https://log.example.org/vouch";
  };
  flake = {
    package = { inherit (flake.packages.x86_64-linux.default) pname version cargoBuildFlags; lockFile = toString flake.packages.x86_64-linux.default.cargoLock.lockFile; };
    apps = builtins.mapAttrs (_: a: a.program) flake.apps.x86_64-linux;
    modules = builtins.attrNames flake.nixosModules;
    overlay = (flake.overlays.default pkgs pkgs).vouch.pname;
  };
  nonFlake = { package = nonFlake.vouch.pname; modules = builtins.attrNames nonFlake.nixosModules; };
}
