import pytest

from controlplane.api.core import Namespace, Pod, PodSpec
from controlplane.api.labels import SelectorError, parse_selector
from controlplane.api.meta import ObjectMeta
from controlplane.client.cache import LABEL_INDEX, NODE_NAME_INDEX, Cache


def pod(name, namespace="default", labels=None, node=None, rv="1"):
    return Pod(
        metadata=ObjectMeta(
            name=name, namespace=namespace, labels=labels or {}, resource_version=rv
        ),
        spec=PodSpec(node_name=node),
    )


def names(objs):
    return [o.metadata.name for o in objs]


def test_get_by_name_and_key():
    cache = Cache()
    a = pod("a")
    assert cache.upsert(a) is None
    cache.upsert(Namespace(metadata=ObjectMeta(name="default")))
    assert cache.get("a", namespace="default") is a
    assert cache.get_by_key("default/a") is a
    assert cache.get("a") is None
    assert cache.get("default").metadata.name == "default"  # cluster-scoped key
    assert "default/a" in cache
    assert len(cache) == 2


def test_upsert_returns_old_and_never_copies():
    cache = Cache()
    a1, a2 = pod("a", rv="1"), pod("a", rv="2")
    cache.upsert(a1)
    assert cache.upsert(a2) is a1
    assert cache.get("a", "default") is a2
    assert cache.remove("default/a") is a2
    assert cache.remove("default/a") is None
    assert len(cache) == 0


def test_list_by_namespace_and_label_selector():
    cache = Cache()
    cache.upsert(pod("web-0", labels={"app": "web", "tier": "front"}))
    cache.upsert(pod("web-1", labels={"app": "web"}))
    cache.upsert(pod("db-0", labels={"app": "db"}))
    cache.upsert(pod("web-x", namespace="other", labels={"app": "web"}))
    assert names(cache.list()) == ["web-0", "web-1", "db-0", "web-x"]
    assert names(cache.list(namespace="default")) == ["web-0", "web-1", "db-0"]
    assert names(cache.list(namespace="nope")) == []
    assert names(cache.list(label_selector="app=web")) == ["web-0", "web-1", "web-x"]
    assert names(cache.list("default", "app=web")) == ["web-0", "web-1"]
    assert names(cache.list("default", "app==web,tier=front")) == ["web-0"]
    assert names(cache.list("default", "app in (web)")) == ["web-0", "web-1"]
    assert names(cache.list("default", "app!=web")) == ["db-0"]
    assert names(cache.list("default", "app in (web,db),!tier")) == ["web-1", "db-0"]
    assert names(cache.list("default", "app=none")) == []
    assert names(cache.list("default", "")) == ["web-0", "web-1", "db-0"]
    assert names(cache.list("default", parse_selector("tier"))) == ["web-0"]
    with pytest.raises(SelectorError):
        cache.list(label_selector="app in (")


def test_label_index_follows_updates_and_deletes():
    cache = Cache()
    cache.upsert(pod("a", labels={"app": "web"}))
    cache.upsert(pod("b", labels={"app": "web"}))
    assert cache.index_keys(LABEL_INDEX, "app=web") == ["default/a", "default/b"]
    cache.upsert(pod("a", labels={"app": "db"}))
    assert cache.index_keys(LABEL_INDEX, "app=web") == ["default/b"]
    assert names(cache.by_index(LABEL_INDEX, "app=db")) == ["a"]
    cache.remove("default/b")
    assert cache.index_keys(LABEL_INDEX, "app=web") == []
    assert cache.index_values(LABEL_INDEX) == ["app=db"]  # empty buckets are dropped
    assert names(cache.list(label_selector="app=web")) == []


def test_node_name_index():
    cache = Cache()
    cache.upsert(pod("a", node="n1"))
    cache.upsert(pod("b", node="n2"))
    cache.upsert(pod("c"))  # unscheduled: not indexed
    cache.upsert(pod("d", namespace="kube-system", node="n1"))
    assert names(cache.by_index(NODE_NAME_INDEX, "n1")) == ["a", "d"]
    cache.upsert(pod("c", node="n1"))  # bound
    assert names(cache.by_index(NODE_NAME_INDEX, "n1")) == ["a", "d", "c"]
    assert cache.index_values(NODE_NAME_INDEX) == ["n1", "n2"]


def test_user_indexers():
    cache = Cache(indexers={"by_owner": lambda o: o.metadata.labels.get("owner", "").split()})
    cache.upsert(pod("a", labels={"owner": "x"}))
    cache.upsert(pod("b", labels={"owner": "y"}))
    assert names(cache.by_index("by_owner", "x")) == ["a"]
    with pytest.raises(KeyError, match="no index named 'nope'"):
        cache.by_index("nope", "x")
    with pytest.raises(
        ValueError, match=r"^indexer name 'label' is reserved for a built-in index$"
    ):
        Cache(indexers={"label": lambda o: ()})


def test_replace_returns_previous_content_and_rebuilds_indexes():
    cache = Cache()
    a, b = pod("a", labels={"app": "web"}), pod("b", labels={"app": "web"})
    cache.upsert(a)
    cache.upsert(b)
    c = pod("c", labels={"app": "web"})
    previous = cache.replace([b, c])
    assert previous == {"default/a": a, "default/b": b}
    assert cache.keys() == ["default/b", "default/c"]
    assert cache.index_keys(LABEL_INDEX, "app=web") == ["default/b", "default/c"]
