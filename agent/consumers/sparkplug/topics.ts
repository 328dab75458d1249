/** Sparkplug B topics of one edge node (Sparkplug 3.0, namespace spBv1.0). */
export const NAMESPACE = 'spBv1.0';

export interface NodeTopics {
  nbirth: string;
  ndeath: string;
  ndata: string;
  ncmd: string;
  /** The primary host's STATE topic, when one is configured. */
  state?: string;
}

export function nodeTopics(
  groupId: string,
  edgeNodeId: string,
  primaryHostId?: string,
): NodeTopics {
  const of = (type: string) => `${NAMESPACE}/${groupId}/${type}/${edgeNodeId}`;
  return {
    nbirth: of('NBIRTH'),
    ndeath: of('NDEATH'),
    ndata: of('NDATA'),
    ncmd: of('NCMD'),
    ...(primaryHostId !== undefined ? { state: `${NAMESPACE}/STATE/${primaryHostId}` } : {}),
  };
}
