{
  description = "Vouch: a transparency log for Nix build attestations";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      modules = import ./dist/nix/modules;
    in
    {
      packages = forAllSystems (system: pkgs: rec {
        vouch = pkgs.callPackage ./dist/nix/package.nix { };
        default = vouch;
      });

      apps = forAllSystems (system: pkgs:
        let pkg = self.packages.${system}.vouch; in
        {
          vouch = { type = "app"; program = "${pkg}/bin/vouch"; };
          vouch-log = { type = "app"; program = "${pkg}/bin/vouch-log"; };
          vouch-witness = { type = "app"; program = "${pkg}/bin/vouch-witness"; };
          default = self.apps.${system}.vouch;
        });

      overlays.default = final: prev: {
        vouch = final.callPackage ./dist/nix/package.nix { };
      };

      nixosModules = modules // {
        default = { imports = builtins.attrValues modules; };
      };
    };
}
