/* The pod sandbox's process (what Kubernetes' pause image runs): it holds the pod's
 * namespaces, reaps zombies and exits on SIGINT/SIGTERM. Built statically by
 * testenv/kube/node-start.sh into a FROM-scratch image (no image registry is reachable here). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(int sig) { (void)sig; _exit(0); }
static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction a = {0}, c = {0};
  a.sa_handler = die;
  sigaction(SIGINT, &a, NULL);
  sigaction(SIGTERM, &a, NULL);
  c.sa_handler = reap;
  c.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &c, NULL);
  for (;;) pause();
  return 1;
}
