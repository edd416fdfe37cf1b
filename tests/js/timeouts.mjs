// The JS side of tests/helpers.py's scaled(): every wait of a test script stretched by
// TETHER_TESTS_TIMEOUT_FACTOR, so that a slow machine can stretch the Python and JS waits alike.
export const factor = Number(process.env.TETHER_TESTS_TIMEOUT_FACTOR || "1") || 1;

/** `ms` milliseconds, scaled. */
export const scaled = (ms) => ms * factor;
