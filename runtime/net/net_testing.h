/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failure injection for tests: make one step of the next operation fail,
 * after the work before it has really been done, so that tests can check
 * that the rollback removes everything.  Not for production use.
 */
#ifndef ATE_NET_TESTING_H
#define ATE_NET_TESTING_H

struct net_ctx;

enum net_fault
{
  NET_FAULT_NONE = 0,
  NET_FAULT_SETUP_VETH,      /* after the veth pair exists */
  NET_FAULT_SETUP_HOST_VETH, /* after ateom0 has its address and is up */
  NET_FAULT_SETUP_INTERIOR,  /* after the interior eth0 and route are set */
  NET_FAULT_SETUP_FORWARD,   /* after ip_forward is on */
  NET_FAULT_SETUP_NFT,       /* the nft transaction is rejected by the kernel */
  NET_FAULT_TAP_QUEUES,      /* after the tap's queues are open and persistent */
  NET_FAULT_TAP_TC,          /* after the eth0 -> tap redirect exists */
  NET_FAULT_RETURN_HOME,     /* the next helper thread cannot return home */
  NET_FAULT_COUNT
};

/* Arm a fault; it fires once, at the first point that matches. */
void net_ctx_inject_fault (struct net_ctx *ctx, enum net_fault fault);

const char *net_fault_name (enum net_fault fault);

#endif
