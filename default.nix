# The non-flake entry point: `nix-build -A vouch`, and the NixOS modules
# for `imports = [ (import ./path/to/vouch { }).nixosModules.default ];`.
{ pkgs ? import <nixpkgs> { } }:

let modules = import ./dist/nix/modules; in
{
  vouch = pkgs.callPackage ./dist/nix/package.nix { };
  nixosModules = modules // {
    default = { imports = builtins.attrValues modules; };
  };
}
