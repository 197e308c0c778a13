# Plugin requirements for Packer >= 1.7 (`packer init packer/`). Packer 1.6.6
# does not parse this block; validate golden.pkr.hcl alone with it.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
