"""A test's handle on a running job: `held_sisa` is SISA whose fit first waits while the file named by
$RECUNLEARN_HOLD exists (a cap of 10 minutes). A scheduler test cancels it while it waits, so the
job cannot finish inside the cluster's grace period however fast the machine; removing the file
lets a rerun go straight through."""

import logging
import os
import time

from unlearn.methods.sisa import SISA
from unlearn.registry import METHODS

log = logging.getLogger(__name__)
CAP_S = 600


@METHODS.register("held_sisa")
class HeldSISA(SISA):
    def fit(self, data):
        hold = os.environ.get("RECUNLEARN_HOLD")
        if hold and os.path.exists(hold):
            log.info("holding while %s exists", hold)
            deadline = time.monotonic() + CAP_S
            while os.path.exists(hold) and time.monotonic() < deadline:
                time.sleep(0.1)
        return super().fit(data)
