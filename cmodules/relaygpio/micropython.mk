# make-based ports (the unix port): the simulated backend, whose pins tests read.
RELAYGPIO_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD += $(RELAYGPIO_MOD_DIR)/modrelaygpio.c
SRC_USERMOD += $(RELAYGPIO_MOD_DIR)/relay_core.c
SRC_USERMOD += $(RELAYGPIO_MOD_DIR)/hw_sim.c

CFLAGS_USERMOD += -I$(RELAYGPIO_MOD_DIR) -DRELAY_HW_SIM
