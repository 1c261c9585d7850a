# The NixOS modules, by name.
{
  vouch-log = ./log.nix;
  vouch-witness = ./witness.nix;
  vouch-substituter = ./substituter.nix;
  vouch-builder = ./builder.nix;
}
