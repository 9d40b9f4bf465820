/* guest.h - where the guest image (kernel + initramfs) runm boots is. */
#ifndef RUNM_ENGINE_GUEST_H
#define RUNM_ENGINE_GUEST_H

#include "common/error.h"

/* $RUNM_KERNEL/$RUNM_INITRD, else beside the installed binaries
 * (../share/runm), else the build tree (../guest/<arch>). Both malloc'd,
 * real paths (a template's key names them). */
int guest_find(char **kernel, char **initrd, runm_error_t *err);

#endif
