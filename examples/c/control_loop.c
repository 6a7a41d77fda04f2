/* A control loop in C around an exported cfc_control policy (see README.md beside this file).

   ./control_loop [STEPS [RATE_HZ]]   run STEPS periods against the monotonic clock at RATE_HZ
                                      (default: the policy's nominal rate), feeding the measured
                                      period as dt, and print the step's latency (p50, p99, max)
                                      and the period's jitter
   ./control_loop --fuzz N            N steps of hostile input (NaN, inf, huge values, dt <= 0):
                                      every refused step must leave state and action untouched and
                                      every accepted one give a finite action inside the bounds;
                                      exits 1 on the first violation

   Built from policy.h / policy.c, the export of
       python -m cfc_control.export POLICY_DIR --format c --out DIR --name policy
   C99 plus POSIX clocks; the policy itself needs only libm. */
#define _POSIX_C_SOURCE 200112L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

#define MAX_STEPS 200000

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *sorted, long n, double q)
{
    long i = (long)(q * (double)(n - 1) + 0.5);
    return sorted[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

/* xorshift64*: a reproducible generator, so that a failing fuzz case can be replayed. */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;

static double uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static double hostile_value(void)
{
    const double u = uniform();
    if (u < 0.05)
        return NAN;
    if (u < 0.08)
        return u < 0.065 ? INFINITY : -INFINITY;
    if (u < 0.12)
        return (uniform() - 0.5) * 1e300;
    return (uniform() - 0.5) * 20.0;
}

static double hostile_dt(void)
{
    const double u = uniform();
    if (u < 0.05)
        return NAN;
    if (u < 0.08)
        return INFINITY;
    if (u < 0.12)
        return -POLICY_NOMINAL_DT * uniform();
    if (u < 0.14)
        return 0.0;
    if (u < 0.18)
        return 1e300 * uniform();
    return POLICY_NOMINAL_DT * (0.1 + 6.0 * uniform());
}

static int fuzz(long steps)
{
    static policy_state state, before;
    policy_real obs[POLICY_N_OBS], action[POLICY_N_ACT], held[POLICY_N_ACT];
    long i, refused = 0;
    int j, status;
    policy_reset(&state);
    for (j = 0; j < POLICY_N_ACT; ++j)
        action[j] = held[j] = (policy_real)0.5 * (policy_action_low[j] + policy_action_high[j]);
    for (i = 0; i < steps; ++i) {
        const int bad_obs = uniform() < 0.2;
        double dt;
        for (j = 0; j < POLICY_N_OBS; ++j)
            obs[j] = (policy_real)(bad_obs ? hostile_value() : (uniform() - 0.5) * 6.0);
        dt = uniform() < 0.3 ? hostile_dt() : POLICY_NOMINAL_DT * (0.5 + uniform());
        if (uniform() < 0.01)
            policy_reset(&state);
        memcpy(&before, &state, sizeof state);
        status = policy_step(&state, obs, dt, action);
        if (status != POLICY_OK) {
            ++refused;
            if (memcmp(&before, &state, sizeof state) != 0 || memcmp(held, action, sizeof action) != 0) {
                printf("step %ld: refused (%s) but state or action changed\n", i, policy_status_text(status));
                return 1;
            }
            continue;
        }
        for (j = 0; j < POLICY_N_ACT; ++j) {
            if (!isfinite(action[j]) || action[j] < policy_action_low[j] || action[j] > policy_action_high[j]) {
                printf("step %ld: action[%d] = %g outside [%g, %g]\n", i, j, (double)action[j],
                       (double)policy_action_low[j], (double)policy_action_high[j]);
                return 1;
            }
        }
        for (j = 0; j < POLICY_STATE_SIZE; ++j) {
            if (!isfinite(state.s[j])) {
                printf("step %ld: state[%d] = %g is not finite\n", i, j, (double)state.s[j]);
                return 1;
            }
        }
        memcpy(held, action, sizeof action);
    }
    printf("fuzz: %ld steps, %ld refused, every check passed\n", steps, refused);
    return 0;
}

static int run(long steps, double rate_hz)
{
    static double latency_us[MAX_STEPS], period_us[MAX_STEPS];
    policy_state state;
    policy_real obs[POLICY_N_OBS], action[POLICY_N_ACT];
    const double period = 1.0 / rate_hz;
    double last, next;
    long i, failures = 0;
    int j;
    struct timespec wake;
    policy_reset(&state);
    last = now_seconds();
    next = last + period;
    for (i = 0; i < steps; ++i) {
        double t, t0, t1;
        wake.tv_sec = (time_t)next;
        wake.tv_nsec = (long)((next - (double)wake.tv_sec) * 1e9);
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL);
        t = now_seconds();
        for (j = 0; j < POLICY_N_OBS; ++j) /* stands in for the robot's sensors */
            obs[j] = (policy_real)sin(3.0 * t + j);
        t0 = now_seconds();
        if (policy_step(&state, obs, t - last, action) != POLICY_OK)
            ++failures; /* hold the previous action: policy_step left it as it was */
        t1 = now_seconds();
        latency_us[i] = 1e6 * (t1 - t0);
        period_us[i] = 1e6 * (t - last);
        last = t;
        next += period;
    }
    qsort(latency_us, (size_t)steps, sizeof(double), compare_doubles);
    qsort(period_us, (size_t)steps, sizeof(double), compare_doubles);
    printf("%ld steps at %.1f Hz: step latency p50 %.2f us, p99 %.2f us, max %.2f us; "
           "period p50 %.1f us, p99 %.1f us; %ld refused\n",
           steps, rate_hz, percentile(latency_us, steps, 0.5), percentile(latency_us, steps, 0.99),
           latency_us[steps - 1], percentile(period_us, steps, 0.5), percentile(period_us, steps, 0.99), failures);
    printf("last action:");
    for (j = 0; j < POLICY_N_ACT; ++j)
        printf(" %.6f", (double)action[j]);
    printf("\n");
    return failures == steps ? 1 : 0;
}

int main(int argc, char **argv)
{
    long steps = 1000;
    double rate = 1.0 / POLICY_NOMINAL_DT;
    if (argc > 2 && strcmp(argv[1], "--fuzz") == 0)
        return fuzz(atol(argv[2]));
    if (argc > 1)
        steps = atol(argv[1]);
    if (argc > 2)
        rate = atof(argv[2]);
    if (steps < 1 || steps > MAX_STEPS || !(rate > 0.0)) {
        fprintf(stderr, "usage: %s [STEPS (1..%d) [RATE_HZ > 0]] | --fuzz N\n", argv[0], MAX_STEPS);
        return 2;
    }
    return run(steps, rate);
}
