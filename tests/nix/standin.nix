# The smallest stand-in for nixpkgs that exercises Vouch's Nix files:
# nixpkgs is not reachable from the test machines, so `lib`, the module
# system's option definitions and the few `pkgs` functions the files use
# are modelled here, with types that check values. `eval.nix` uses them.
let
  inherit (builtins) isAttrs isBool isInt isList isString all attrNames;

  mkType = name: check: { inherit name check; };

  types = {
    bool = mkType "bool" isBool;
    str = mkType "str" isString;
    lines = mkType "lines" isString;
    path = mkType "path" (v: builtins.isPath v || (isString v && builtins.substring 0 1 v == "/"));
    package = mkType "package" (v: isAttrs v && v ? outPath);
    listOf = t: mkType "listOf ${t.name}" (v: isList v && all t.check v);
    enum = values: mkType "enum" (v: builtins.elem v values);
    ints = { positive = mkType "positive int" (v: isInt v && v > 0); };
  };

  lib = {
    inherit types;
    mkOption = attrs:
      assert attrs ? type && attrs ? description;
      { _type = "option"; } // attrs;
    mkEnableOption = what: {
      _type = "option";
      type = types.bool;
      default = false;
      description = "Whether to enable ${what}.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkForce = content: { _type = "override"; priority = 50; inherit content; };
    mkBefore = content: { _type = "order"; priority = 500; inherit content; };
    toInt = builtins.fromJSON;
    last = l: builtins.elemAt l (builtins.length l - 1);
    splitString = sep: s: builtins.filter isString (builtins.split sep s);
    escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    cleanSourceWith = { src, filter }: src;
    licenses.asl20 = { spdxId = "Apache-2.0"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };

  drv = name: { outPath = "/nix/store/00000000000000000000000000000000-${name}"; inherit name; };

  pkgs = {
    vouch = drv "vouch-0.1.0";
    formats.toml = { }: {
      type = mkType "toml value" isAttrs;
      generate = name: value: (drv name) // { toml = value; };
    };
    writeText = name: text: (drv name) // { inherit text; };
    writeShellScript = name: text: (drv name) // { inherit text; };
    callPackage = f: overrides:
      (if builtins.isFunction f then f else import f) ({
        inherit lib;
        rustPlatform = {
          bindgenHook = drv "bindgen-hook";
          buildRustPackage = attrs: (drv "${attrs.pname}-${attrs.version}") // attrs;
        };
      } // overrides);
  };
in
{ inherit lib pkgs types; }
