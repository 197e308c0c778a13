# venvbake in a golden image: upload venvbake, the profile (and optionally a
# wheelhouse), run `venvbake apply` under sudo with a clean environment,
# download the manifest and the inventory variables, clean up.
#
# Sources: a qemu build of the Ubuntu 24.04 cloud image, an amazon-ebs build
# of Ubuntu 24.04, and `null.existing` for a machine that already runs (it is
# what the end-to-end test drives). Pick one with `-only`, e.g.
#
#   packer build -only=amazon-ebs.ubuntu -var aws_region=eu-west-1 packer/golden.pkr.hcl
#
# Plugin requirements for Packer >= 1.7 are in plugins.pkr.hcl next to this
# file (`packer init packer/` then `packer build packer/`). Packer 1.6.6 (Debian)
# has these builders built in and does not parse `required_plugins`: give it
# this file alone, after building venvbake (the file provisioner checks its
# source exists):
#   packer validate -var venvbake_binary=target/release/venvbake packer/golden.pkr.hcl

variable "venvbake_binary" {
  type        = string
  default     = "target/release/venvbake"
  description = "The venvbake binary (x86_64 Linux) to upload."
}

variable "profile_dir" {
  type        = string
  default     = "profiles"
  description = "Folder holding the profile and its lock; uploaded whole."
}

variable "profile_name" {
  type        = string
  default     = "ansible"
  description = "Profile to apply: <profile_dir>/<profile_name>.toml."
}

variable "wheelhouse" {
  type        = string
  default     = "packer/no-wheels"
  description = "Folder of wheels for an offline build (apply --wheelhouse); a folder without .whl files means: install from the index."
}

variable "interpreter" {
  type        = string
  default     = "/opt/venvs/ansible/bin/python"
  description = "The profile's venv interpreter, recorded in Packer's manifest."
}

variable "output_dir" {
  type        = string
  default     = "output"
  description = "Where the venvbake manifest, the inventory variables and Packer's manifest land."
}

variable "sudo" {
  type        = string
  default     = "sudo"
  description = "How the provisioner becomes root (\"sudo\", or \"\" when already root)."
}

variable "ssh_username" {
  type    = string
  default = "ubuntu"
}

variable "ssh_host" {
  type    = string
  default = "127.0.0.1"
}

variable "ssh_port" {
  type    = number
  default = 22
}

variable "ssh_private_key_file" {
  type    = string
  default = ""
}

variable "ubuntu_image_url" {
  type    = string
  default = "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
}

# Pin the image you build from: `sha256:<digest>`, or
# `file:https://cloud-images.ubuntu.com/noble/current/SHA256SUMS` (fetched at
# validate time, so it needs the network). "none" only keeps an offline
# `packer validate` working; never build an image with it.
variable "ubuntu_image_checksum" {
  type    = string
  default = "none"
}

variable "aws_region" {
  type    = string
  default = "eu-west-1"
}

source "qemu" "ubuntu" {
  iso_url          = var.ubuntu_image_url
  iso_checksum     = var.ubuntu_image_checksum
  disk_image       = true
  disk_size        = "8G"
  format           = "qcow2"
  headless         = true
  accelerator      = "kvm"
  output_directory = "${var.output_dir}/qemu"
  # The cloud image needs a NoCloud seed that lets Packer in with this key.
  cd_files             = ["packer/seed/*"]
  cd_label             = "cidata"
  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "20m"
  shutdown_command     = "sudo shutdown -P now"
}

source "amazon-ebs" "ubuntu" {
  region        = var.aws_region
  instance_type = "t3.small"
  ami_name      = "golden-ubuntu-2404-venvbake-{{timestamp}}"
  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["099720109477"]
    most_recent = true
  }
  ssh_username = var.ssh_username
}

source "null" "existing" {
  communicator         = "ssh"
  ssh_host             = var.ssh_host
  ssh_port             = var.ssh_port
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  # Without a key file, use the SSH agent.
  ssh_agent_auth = var.ssh_private_key_file == ""
}

build {
  sources = ["source.qemu.ubuntu", "source.amazon-ebs.ubuntu", "source.null.existing"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/venvbake/profile /tmp/venvbake/wheels"]
  }

  provisioner "file" {
    source      = var.venvbake_binary
    destination = "/tmp/venvbake/venvbake"
  }

  provisioner "file" {
    source      = "${var.profile_dir}/"
    destination = "/tmp/venvbake/profile"
  }

  provisioner "file" {
    source      = "${var.wheelhouse}/"
    destination = "/tmp/venvbake/wheels"
  }

  # Root, and nothing of the SSH session's environment but PATH: venvbake
  # passes only proxy variables on to apt and pip, and they are set here
  # explicitly if the build needs them.
  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; ${var.sudo} env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin {{ .Vars }} sh {{ .Path }}"
    inline = [
      "set -e",
      "chmod 0755 /tmp/venvbake/venvbake",
      "if ls /tmp/venvbake/wheels/*.whl >/dev/null 2>&1; then wh='--wheelhouse /tmp/venvbake/wheels'; else wh=''; fi",
      # --no-cache: venvbake runs inside the image here, so its download
      # cache would stay in the image.
      "/tmp/venvbake/venvbake apply --progress plain --no-cache $wh /tmp/venvbake/profile/${var.profile_name}.toml",
      "/tmp/venvbake/venvbake inventory ${var.profile_name} --format yaml > /tmp/venvbake/inventory.yml",
      "/tmp/venvbake/venvbake sbom ${var.profile_name} --format cyclonedx > /tmp/venvbake/sbom.cdx.json",
    ]
  }

  provisioner "file" {
    direction   = "download"
    source      = "/var/lib/venvbake/${var.profile_name}.json"
    destination = "${var.output_dir}/venvbake-manifest.json"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/tmp/venvbake/inventory.yml"
    destination = "${var.output_dir}/inventory.yml"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/tmp/venvbake/sbom.cdx.json"
    destination = "${var.output_dir}/sbom.cdx.json"
  }

  # Nothing of the build stays in the image but what venvbake made.
  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; ${var.sudo} env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh {{ .Path }}"
    inline          = ["rm -rf /tmp/venvbake"]
  }

  post-processor "manifest" {
    output     = "${var.output_dir}/packer-manifest.json"
    strip_path = true
    custom_data = {
      venvbake_profile     = var.profile_name
      venvbake_interpreter = var.interpreter
      venvbake_manifest    = "${var.output_dir}/venvbake-manifest.json"
      venvbake_inventory   = "${var.output_dir}/inventory.yml"
      venvbake_sbom        = "${var.output_dir}/sbom.cdx.json"
    }
  }
}
