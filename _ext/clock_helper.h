/* The clock and calendar arithmetic behind the compiled core's header dates. */
#ifndef KERNELWIRE_CLOCK_HELPER_H
#define KERNELWIRE_CLOCK_HELPER_H

#include <stdint.h>
#include <time.h>

/* Wall-clock UTC time: seconds since the epoch and microseconds (floored,
 * as datetime.now() does). Returns 0 on failure. */
static int kw_utc_now(int64_t *seconds, int *microseconds)
{
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) {
        return 0;
    }
    *seconds = (int64_t)ts.tv_sec;
    *microseconds = (int)(ts.tv_nsec / 1000);
    return 1;
}

/* Proleptic Gregorian date of a day count since 1970-01-01 (days may be
 * negative); the classic era-based conversion. */
static void kw_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                  /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);            /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                 /* [0, 11] */
    int64_t d = doy - (153 * mp + 2) / 5 + 1;                         /* [1, 31] */
    int64_t m = mp < 10 ? mp + 3 : mp - 9;                            /* [1, 12] */
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

#endif
